"""The runs of a comparison or sweep, wherever they run: one after another in this process, or as
Ray tasks on a cluster (`executors.EXECUTORS`). Every run keeps its run directory, its budget and
its result; only the place it runs changes."""
