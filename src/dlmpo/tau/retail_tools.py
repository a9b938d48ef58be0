"""The 16 retail tools, with the behaviour of the τ-bench retail domain (outputs and database edits)."""

from __future__ import annotations

import json
from typing import Any

from dlmpo.tau.common_tools import COMMON_TOOLS

CANCEL_REASONS = ("no longer needed", "ordered by mistake")


def _address(address1, address2, city, state, country, zip) -> dict[str, Any]:
    return {"address1": address1, "address2": address2, "city": city, "state": state, "country": country, "zip": zip}


def _order(db, order_id, status: str, verb: str) -> tuple[dict | None, str | None]:
    if order_id not in db["orders"]:
        return None, "Error: order not found"
    order = db["orders"][order_id]
    if order["status"] != status:
        return None, f"Error: non-{status} order cannot be {verb}"
    return order, None


def _items_present(order: dict, item_ids: list[str]) -> str | None:
    """The first requested item the order does not hold often enough (lists may repeat items)."""
    held = [item["item_id"] for item in order["items"]]
    return next((i for i in item_ids if item_ids.count(i) > held.count(i)), None)


def _price_difference(db, order, item_ids, new_item_ids) -> tuple[float, str | None]:
    if len(item_ids) != len(new_item_ids):
        return 0, "Error: the number of items to be exchanged should match"
    diff = 0
    for item_id, new_id in zip(item_ids, new_item_ids):
        item = next(i for i in order["items"] if i["item_id"] == item_id)
        variants = db["products"][item["product_id"]]["variants"]
        if not (new_id in variants and variants[new_id]["available"]):
            return 0, f"Error: new item {new_id} not found or available"
        diff += variants[new_id]["price"] - item["price"]
    return diff, None


def _payment_method(db, order, payment_method_id) -> dict | None:
    return db["users"][order["user_id"]]["payment_methods"].get(payment_method_id)


def _swap(db, order_id, status, verb, item_ids, new_item_ids, payment_method_id):
    """The checks an exchange and an item modification share: (order, price difference, payment
    method, None), or the error the agent sees in the last place."""
    order, error = _order(db, order_id, status, verb)
    if error:
        return None, 0, None, error
    missing = _items_present(order, item_ids)
    if missing is not None:
        return None, 0, None, f"Error: {missing} not found"
    diff, error = _price_difference(db, order, item_ids, new_item_ids)
    if error:
        return None, 0, None, error
    method = _payment_method(db, order, payment_method_id)
    if method is None:
        return None, 0, None, "Error: payment method not found"
    return order, diff, method, None


def cancel_pending_order(db, order_id, reason) -> str:
    order, error = _order(db, order_id, "pending", "cancelled")
    if error:
        return error
    if reason not in CANCEL_REASONS:
        return "Error: invalid reason"
    refunds = []
    for payment in order["payment_history"]:
        pid = payment["payment_method_id"]
        refunds.append({"transaction_type": "refund", "amount": payment["amount"], "payment_method_id": pid})
        if "gift_card" in pid:  # gift cards are refunded at once
            method = db["users"][order["user_id"]]["payment_methods"][pid]
            method["balance"] = round(method["balance"] + payment["amount"], 2)
    order["status"] = "cancelled"
    order["cancel_reason"] = reason
    order["payment_history"].extend(refunds)
    return json.dumps(order)


def exchange_delivered_order_items(db, order_id, item_ids, new_item_ids, payment_method_id) -> str:
    order, diff, method, error = _swap(db, order_id, "delivered", "exchanged", item_ids, new_item_ids,
                                       payment_method_id)
    if error:
        return error
    diff = round(diff, 2)
    if method["source"] == "gift_card" and method["balance"] < diff:
        return "Error: insufficient gift card balance to pay for the price difference"
    order["status"] = "exchange requested"
    order["exchange_items"] = sorted(item_ids)
    order["exchange_new_items"] = sorted(new_item_ids)
    order["exchange_payment_method_id"] = payment_method_id
    order["exchange_price_difference"] = diff
    return json.dumps(order)


def find_user_id_by_email(db, email) -> str:
    for user_id, profile in db["users"].items():
        if profile["email"].lower() == email.lower():
            return user_id
    return "Error: user not found"


def find_user_id_by_name_zip(db, first_name, last_name, zip) -> str:
    for user_id, profile in db["users"].items():
        name = profile["name"]
        if (name["first_name"].lower() == first_name.lower() and name["last_name"].lower() == last_name.lower()
                and profile["address"]["zip"] == zip):
            return user_id
    return "Error: user not found"


def get_order_details(db, order_id) -> str:
    if order_id in db["orders"]:
        return json.dumps(db["orders"][order_id])
    return "Error: order not found"


def get_product_details(db, product_id) -> str:
    if product_id in db["products"]:
        return json.dumps(db["products"][product_id])
    return "Error: product not found"


def get_user_details(db, user_id) -> str:
    if user_id in db["users"]:
        return json.dumps(db["users"][user_id])
    return "Error: user not found"


def list_all_product_types(db) -> str:
    names = {product["name"]: product["product_id"] for product in db["products"].values()}
    return json.dumps(dict(sorted(names.items())))


def modify_pending_order_address(db, order_id, address1, address2, city, state, country, zip) -> str:
    order, error = _order(db, order_id, "pending", "modified")
    if error:
        return error
    order["address"] = _address(address1, address2, city, state, country, zip)
    return json.dumps(order)


def modify_pending_order_items(db, order_id, item_ids, new_item_ids, payment_method_id) -> str:
    order, diff, method, error = _swap(db, order_id, "pending", "modified", item_ids, new_item_ids, payment_method_id)
    if error:
        return error
    if method["source"] == "gift_card" and method["balance"] < diff:
        return "Error: insufficient gift card balance to pay for the new item"
    order["payment_history"].append({"transaction_type": "payment" if diff > 0 else "refund", "amount": abs(diff),
                                     "payment_method_id": payment_method_id})
    if method["source"] == "gift_card":
        method["balance"] = round(method["balance"] - diff, 2)
    for item_id, new_id in zip(item_ids, new_item_ids):
        item = next(i for i in order["items"] if i["item_id"] == item_id)
        variant = db["products"][item["product_id"]]["variants"][new_id]
        item["item_id"], item["price"], item["options"] = new_id, variant["price"], variant["options"]
    order["status"] = "pending (item modified)"
    return json.dumps(order)


def modify_pending_order_payment(db, order_id, payment_method_id) -> str:
    order, error = _order(db, order_id, "pending", "modified")
    if error:
        return error
    method = _payment_method(db, order, payment_method_id)
    if method is None:
        return "Error: payment method not found"
    history = order["payment_history"]
    if len(history) > 1 or history[0]["transaction_type"] != "payment":
        return "Error: there should be exactly one payment for a pending order"
    old_id = history[0]["payment_method_id"]
    if old_id == payment_method_id:
        return "Error: the new payment method should be different from the current one"
    amount = history[0]["amount"]
    if method["source"] == "gift_card" and method["balance"] < amount:
        return "Error: insufficient gift card balance to pay for the order"
    history.extend([
        {"transaction_type": "payment", "amount": amount, "payment_method_id": payment_method_id},
        {"transaction_type": "refund", "amount": amount, "payment_method_id": old_id},
    ])
    if method["source"] == "gift_card":
        method["balance"] = round(method["balance"] - amount, 2)
    if "gift_card" in old_id:
        old = _payment_method(db, order, old_id)
        old["balance"] = round(old["balance"] + amount, 2)
    return json.dumps(order)


def modify_user_address(db, user_id, address1, address2, city, state, country, zip) -> str:
    if user_id not in db["users"]:
        return "Error: user not found"
    user = db["users"][user_id]
    user["address"] = _address(address1, address2, city, state, country, zip)
    return json.dumps(user)


def return_delivered_order_items(db, order_id, item_ids, payment_method_id) -> str:
    order, error = _order(db, order_id, "delivered", "returned")
    if error:
        return error
    if _payment_method(db, order, payment_method_id) is None:
        return "Error: payment method not found"
    if "gift_card" not in payment_method_id and payment_method_id != order["payment_history"][0]["payment_method_id"]:
        return "Error: payment method should be either the original payment method or a gift card"
    if _items_present(order, item_ids) is not None:
        return "Error: some item not found"
    order["status"] = "return requested"
    order["return_items"] = sorted(item_ids)
    order["return_payment_method_id"] = payment_method_id
    return json.dumps(order)


RETAIL_TOOLS = {
    **COMMON_TOOLS,
    "cancel_pending_order": cancel_pending_order,
    "exchange_delivered_order_items": exchange_delivered_order_items,
    "find_user_id_by_email": find_user_id_by_email,
    "find_user_id_by_name_zip": find_user_id_by_name_zip,
    "get_order_details": get_order_details,
    "get_product_details": get_product_details,
    "get_user_details": get_user_details,
    "list_all_product_types": list_all_product_types,
    "modify_pending_order_address": modify_pending_order_address,
    "modify_pending_order_items": modify_pending_order_items,
    "modify_pending_order_payment": modify_pending_order_payment,
    "modify_user_address": modify_user_address,
    "return_delivered_order_items": return_delivered_order_items,
}
RETAIL_WRITE_TOOLS = frozenset({"cancel_pending_order", "exchange_delivered_order_items", "modify_pending_order_address",
                                "modify_pending_order_items", "modify_pending_order_payment", "modify_user_address",
                                "return_delivered_order_items"})
