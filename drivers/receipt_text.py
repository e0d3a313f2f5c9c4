"""The printed words of receipts and shift reports, in English and Russian.

The layout (drivers.render) writes the English text; `tr(language, text, **values)` gives it
in the receipt's language. Catalog names, store names and messages from the rules are printed
as they are. Cyrillic reaches the printer through python-escpos's code pages (its encoder picks
one the printer's profile has, e.g. CP866, and sends ESC t n before the text).
"""

from __future__ import annotations

from typing import Any

LANGUAGES = ("en", "ru")
RU = {
    "Terminal {terminal}  ": "Касса {terminal}  ",
    "Receipt {receipt}": "Чек {receipt}",
    "RETURN": "ВОЗВРАТ",
    "TEST RECEIPT - NOT A SALE": "ТЕСТОВЫЙ ЧЕК - НЕ ПРОДАЖА",
    "  discount": "  скидка",
    "Subtotal": "Сумма",
    "Discount": "Скидка",
    "Total": "Итого",
    "Paid with {points} points": "Оплачено баллами: {points}",
    "REFUND": "К ВОЗВРАТУ",
    "TO PAY": "К ОПЛАТЕ",
    "Payment": "Оплата",
    "Card": "Карта",
    "Points before": "Баллов было",
    "Points paid": "Списано баллов",
    "Points earned": "Начислено баллов",
    "Points after": "Баллов стало",
    "Earned points usable from {date}": "Начисленные баллы доступны с {date}",
    "{points} points expire on {date}": "{points} баллов сгорят {date}",
    "Gift: {name} x {qty}": "Подарок: {name} x {qty}",
    "COUPON": "КУПОН",
    "Valid until {date}": "Действует до {date}",
    "Sale {receipt}": "Продажа {receipt}",
    "Points restored {restored}, taken back {clawed}": "Баллов возвращено {restored}, списано {clawed}",
    "card": "карта",
    "cash": "наличные",
    "points": "баллы",
    "refund": "возврат",
    "{kind} REPORT - SHIFT {shift}": "{kind}-ОТЧЁТ - СМЕНА {shift}",
    "Terminal {terminal}": "Касса {terminal}",
    "Shift opened": "Смена открыта",
    "Closed": "Закрыта",
    "Printed": "Напечатан",
    "Sales": "Продаж",
    "Discounts given": "Скидки",
    "Paid with points": "Оплачено баллами",
    "Taken": "Получено",
    "Returns": "Возвратов",
    "Refunded": "Возвращено",
    "Net": "Итого за смену",
    "SHIFT CLOSED": "СМЕНА ЗАКРЫТА",
    "Tax ID {tax_id}": "ИНН {tax_id}",
    "Shift {shift}": "Смена {shift}",
    "Self-checkout": "Касса самообслуживания",
    "Cashier {name}": "Кассир {name}",
    "COPY": "КОПИЯ",
    "incl. VAT {rate}% of {paid}": "в т.ч. НДС {rate}% с {paid}",
    "Change": "Сдача",
    "Cash in": "Внесено",
    "Cash out": "Изъято",
}
TEXTS = {"en": {}, "ru": RU}


def tr(language: str, text: str, **values: Any) -> str:
    """`text` (the English original) in `language`, with `values` filled in."""
    return TEXTS.get(language, {}).get(text, text).format(**values)


def tr_method(language: str, methods: str) -> str:
    """'card+cash' → 'карта+наличные'; unknown methods print as they are."""
    return "+".join(TEXTS.get(language, {}).get(m, m) for m in methods.split("+"))
