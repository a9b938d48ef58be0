from dlmpo.cli import main

main()
