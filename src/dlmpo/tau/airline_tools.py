"""The 14 airline tools, with the behaviour (outputs and database edits) of the recorded τ-bench episodes.

Every tool takes the domain database and the model's keyword arguments and returns the text the
agent sees. Mutations happen in place on the episode's own copy of the database."""

from __future__ import annotations

import json
from copy import deepcopy

from dlmpo.tau.common_tools import COMMON_TOOLS

AIRPORTS = {
    "SFO": "San Francisco", "JFK": "New York", "LAX": "Los Angeles", "ORD": "Chicago", "DFW": "Dallas",
    "DEN": "Denver", "SEA": "Seattle", "ATL": "Atlanta", "MIA": "Miami", "BOS": "Boston", "PHX": "Phoenix",
    "IAH": "Houston", "LAS": "Las Vegas", "MCO": "Orlando", "EWR": "Newark", "CLT": "Charlotte",
    "MSP": "Minneapolis", "DTW": "Detroit", "PHL": "Philadelphia", "LGA": "LaGuardia",
}
NEW_RESERVATION_IDS = ("HATHAT", "HATHAU", "HATHAV")  # a task makes at most three bookings
NEW_CERTIFICATE_IDS = ("certificate_3221322", "certificate_3221323", "certificate_3221324")


def _price_leg(db: dict, flight: dict, cabin: str, seats: int) -> str | None:
    """Fill a booked leg's price, origin and destination from the flight's schedule; the error the
    agent sees when the flight cannot take `seats` more in `cabin`, else None."""
    number, date = flight["flight_number"], flight["date"]
    if number not in db["flights"]:
        return f"Error: flight {number} not found"
    row = db["flights"][number]
    if date not in row["dates"]:
        return f"Error: flight {number} not found on date {date}"
    day = row["dates"][date]
    if day["status"] != "available":
        return f"Error: flight {number} not available on date {date}"
    if day["available_seats"][cabin] < seats:
        return f"Error: not enough seats on flight {number}"
    flight["price"] = day["prices"][cabin]
    flight["origin"], flight["destination"] = row["origin"], row["destination"]
    return None


def book_reservation(db, user_id, origin, destination, flight_type, cabin, flights, passengers, payment_methods,
                     total_baggages, nonfree_baggages, insurance) -> str:
    reservations, users = db["reservations"], db["users"]
    if user_id not in users:
        return "Error: user not found"
    user = users[user_id]
    reservation_id = next((r for r in NEW_RESERVATION_IDS[:-1] if r not in reservations), NEW_RESERVATION_IDS[-1])
    reservation = {
        "reservation_id": reservation_id, "user_id": user_id, "origin": origin, "destination": destination,
        "flight_type": flight_type, "cabin": cabin, "flights": deepcopy(flights), "passengers": passengers,
        "payment_history": payment_methods, "created_at": "2024-05-15T15:00:00", "total_baggages": total_baggages,
        "nonfree_baggages": nonfree_baggages, "insurance": insurance,
    }
    total = 0
    for flight in reservation["flights"]:
        error = _price_leg(db, flight, cabin, len(passengers))
        if error:
            return error
        total += flight["price"] * len(passengers)
    if insurance == "yes":
        total += 30 * len(passengers)
    total += 50 * nonfree_baggages
    for payment in payment_methods:
        pid = payment["payment_id"]
        if pid not in user["payment_methods"]:
            return f"Error: payment method {pid} not found"
        method = user["payment_methods"][pid]
        if method["source"] in ("gift_card", "certificate") and method["amount"] < payment["amount"]:
            return f"Error: not enough balance in payment method {pid}"
    paid = sum(payment["amount"] for payment in payment_methods)
    if paid != total:
        return f"Error: payment amount does not add up, total price is {total}, but paid {paid}"
    for payment in payment_methods:
        method = user["payment_methods"][payment["payment_id"]]
        if method["source"] == "gift_card":
            method["amount"] -= payment["amount"]
        elif method["source"] == "certificate":
            del user["payment_methods"][payment["payment_id"]]
    reservations[reservation_id] = reservation
    user["reservations"].append(reservation_id)
    return json.dumps(reservation)


def cancel_reservation(db, reservation_id) -> str:
    if reservation_id not in db["reservations"]:
        return "Error: reservation not found"
    reservation = db["reservations"][reservation_id]
    refunds = [{"payment_id": p["payment_id"], "amount": -p["amount"]} for p in reservation["payment_history"]]
    reservation["payment_history"].extend(refunds)
    reservation["status"] = "cancelled"
    return json.dumps(reservation)


def get_reservation_details(db, reservation_id) -> str:
    if reservation_id in db["reservations"]:
        return json.dumps(db["reservations"][reservation_id])
    return "Error: user not found"  # sic: the recorded episodes show this message


def get_user_details(db, user_id) -> str:
    if user_id in db["users"]:
        return json.dumps(db["users"][user_id])
    return "Error: user not found"


def list_all_airports(db) -> str:
    return json.dumps(AIRPORTS)


def _without_dates(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "dates"}


def search_direct_flight(db, origin, destination, date) -> str:
    results = []
    for row in db["flights"].values():
        if row["origin"] == origin and row["destination"] == destination:
            if date in row["dates"] and row["dates"][date]["status"] == "available":
                results.append({**_without_dates(row), **row["dates"][date]})
    return json.dumps(results)


def search_onestop_flight(db, origin, destination, date) -> str:
    results = []
    for first in db["flights"].values():
        if first["origin"] != origin:
            continue
        for second in db["flights"].values():
            if second["destination"] != destination or first["destination"] != second["origin"]:
                continue
            overnight = "+1" in first["scheduled_arrival_time_est"]
            date2 = f"2024-05-{int(date[-2:]) + 1}" if overnight else date
            if first["scheduled_arrival_time_est"] > second["scheduled_departure_time_est"]:
                continue
            if date in first["dates"] and date2 in second["dates"]:
                if first["dates"][date]["status"] == "available" and second["dates"][date2]["status"] == "available":
                    leg1 = {**_without_dates(first), **first["dates"][date], "date": date}
                    # as recorded: the second leg shows the first leg's date entry (seats, prices)
                    leg2 = {**_without_dates(second), **second["dates"][date], "date": date2}
                    results.append([leg1, leg2])
    return json.dumps(results)


def send_certificate(db, user_id, amount) -> str:
    if user_id not in db["users"]:
        return "Error: user not found"
    methods = db["users"][user_id]["payment_methods"]
    for payment_id in NEW_CERTIFICATE_IDS:
        if payment_id not in methods:
            methods[payment_id] = {"source": "certificate", "amount": amount, "id": payment_id}
            return f"Certificate {payment_id} added to user {user_id} with amount {amount}."
    return "Error: too many certificates"


def _charge(db, reservation, payment_id, amount) -> str | None:
    """Check a non-certificate payment for a change; the error text, or None when it can pay."""
    methods = db["users"][reservation["user_id"]]["payment_methods"]
    if payment_id not in methods:
        return "Error: payment method not found"
    method = methods[payment_id]
    if method["source"] == "certificate":
        return "Error: certificate cannot be used to update reservation"
    if method["source"] == "gift_card" and method["amount"] < amount:
        return "Error: gift card balance is not enough"
    return None


def _pay(db, reservation, payment_id, amount) -> None:
    method = db["users"][reservation["user_id"]]["payment_methods"][payment_id]
    if method["source"] == "gift_card":
        method["amount"] -= amount
    if amount != 0:
        reservation["payment_history"].append({"payment_id": payment_id, "amount": amount})


def update_reservation_baggages(db, reservation_id, total_baggages, nonfree_baggages, payment_id) -> str:
    if reservation_id not in db["reservations"]:
        return "Error: reservation not found"
    reservation = db["reservations"][reservation_id]
    amount = 50 * max(0, nonfree_baggages - reservation["nonfree_baggages"])
    error = _charge(db, reservation, payment_id, amount)
    if error:
        return error
    reservation["total_baggages"] = total_baggages
    reservation["nonfree_baggages"] = nonfree_baggages
    _pay(db, reservation, payment_id, amount)
    return json.dumps(reservation)


def update_reservation_flights(db, reservation_id, cabin, flights, payment_id) -> str:
    if reservation_id not in db["reservations"]:
        return "Error: reservation not found"
    reservation = db["reservations"][reservation_id]
    seats = len(reservation["passengers"])
    flights = deepcopy(flights)
    total = 0
    for flight in flights:
        kept = [f for f in reservation["flights"] if f["flight_number"] == flight["flight_number"]
                and f["date"] == flight["date"] and cabin == reservation["cabin"]]
        if kept:  # an unchanged segment keeps the price it was bought at
            source = kept[0]
            flight["price"], flight["origin"], flight["destination"] = source["price"], source["origin"], source["destination"]
        else:
            error = _price_leg(db, flight, cabin, seats)
            if error:
                return error
        total += flight["price"] * seats
    total -= sum(f["price"] for f in reservation["flights"]) * seats
    error = _charge(db, reservation, payment_id, total)
    if error:
        return error
    reservation["flights"] = flights
    _pay(db, reservation, payment_id, total)
    return json.dumps(reservation)


def update_reservation_passengers(db, reservation_id, passengers) -> str:
    if reservation_id not in db["reservations"]:
        return "Error: reservation not found"
    reservation = db["reservations"][reservation_id]
    if len(passengers) != len(reservation["passengers"]):
        return "Error: number of passengers does not match"
    reservation["passengers"] = passengers
    return json.dumps(reservation)


AIRLINE_TOOLS = {
    **COMMON_TOOLS,
    "book_reservation": book_reservation,
    "cancel_reservation": cancel_reservation,
    "get_reservation_details": get_reservation_details,
    "get_user_details": get_user_details,
    "list_all_airports": list_all_airports,
    "search_direct_flight": search_direct_flight,
    "search_onestop_flight": search_onestop_flight,
    "send_certificate": send_certificate,
    "update_reservation_baggages": update_reservation_baggages,
    "update_reservation_flights": update_reservation_flights,
    "update_reservation_passengers": update_reservation_passengers,
}
AIRLINE_WRITE_TOOLS = frozenset({"book_reservation", "cancel_reservation", "send_certificate", "update_reservation_baggages",
                                 "update_reservation_flights", "update_reservation_passengers"})
