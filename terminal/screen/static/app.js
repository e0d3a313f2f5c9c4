// posterm kiosk screen. Follows the checkout through GET /v1/events (SSE) and acts through the
// local API only; nothing here decides a price, a permission or a refund — the daemon does.
// Texts in Russian and English (T); catalog names and rule messages are shown as they come.
// Personal data: phone numbers are shown masked while typed and never kept after a request.
"use strict";

const T = {
  en: {
    welcome: "Welcome", scan_to_start: "Scan your first item to start",
    card_hint: "Have a loyalty card? Swipe or scan it at any time.", register_card: "Register a loyalty card",
    call_attendant: "Call attendant", attendant: "Attendant", card: "Card", points: "Points", coupon: "Coupon",
    pay: "Pay", empty_cart: "Scan an item", subtotal: "Subtotal", you_save: "You save", points_paid: "Paid with points",
    to_pay: "To pay", earn: "Points you will earn", discount: "discount", kg: "kg",
    age_wait: "{age}+ — the attendant checks your age", age_ok: "{age}+ checked",
    more_to_level: "{money} more to {level}", level_now: "Your level: {level}", gift: "Gift: {name} × {qty}",
    take_receipt: "Please take your receipt", thanks: "Thank you for shopping with us!",
    receipt_points: "Card balance: {balance} points", please_call: "Please call the attendant",
    printer_out: "The receipt printer is out of paper", printer_off: "The receipt printer does not answer",
    device_lost: "A device was disconnected: {device}", server_lost: "The terminal does not answer",
    unknown_code: "Code {code} is not in our catalog — ask the attendant", error: "Something went wrong: {message}",
    card_title: "Your loyalty card", card_how: "Swipe or scan your card — or type your phone number:",
    find_card: "Find my card", no_card_phone: "No card is registered to this phone here.",
    register_new: "Register a new card", cancel: "Back", ok: "OK", clear: "Clear",
    points_title: "Pay with points", points_have: "Up to {points} points can pay for this purchase",
    points_take: "{points} points take {money} off", apply: "Apply", no_points: "No points",
    coupon_title: "Coupon or promo code", coupon_how: "Type the code or scan the coupon", send: "Send",
    pay_title: "Payment", pay_how: "Insert, tap or swipe your bank card on the payment terminal.",
    pay_device: "Pay {money} (payment terminal)", paying: "Waiting for the payment terminal…",
    enrol_title: "Register a loyalty card", enrol_phone: "Your mobile phone number:",
    enrol_terms: "Programme terms (please read them in full):", enrol_consent: "I agree to the programme terms",
    enrol_do: "Register", enrol_done: "Your card {card} is registered and attached to this purchase.",
    staff_title: "Attendant", staff_name: "Attendant name", staff_wrong: "Wrong name or PIN",
    staff_locked: "Too many wrong PINs; wait and try again", staff_pin: "PIN", staff_login: "Unlock",
    staff_logout: "Lock", staff_age: "Approve age check", staff_cancel: "Cancel this purchase",
    staff_reprint: "Reprint the last receipt", staff_x: "Print X report", staff_z: "Close shift (Z report)",
    staff_return_hint: "Returns: scan the receipt's barcode.", staff_remove: "Remove",
    return_title: "Return", return_receipt: "Receipt {receipt}", return_all: "Return everything on it",
    return_done: "Refund {money}. Points restored {restored}, taken back {clawed}.",
    reprinted: "The copy is printing.", shift_closed: "Shift {shift} closed; the Z report is printing.",
    x_printed: "The X report is printing.", checkout_cancelled: "The purchase was cancelled.",
    offline_card: "The central server is unreachable: points are limited for now.",
    lang_name: "Русский",
  },
  ru: {
    welcome: "Добро пожаловать", scan_to_start: "Отсканируйте первый товар, чтобы начать",
    card_hint: "Есть карта лояльности? Проведите или отсканируйте её в любой момент.",
    register_card: "Оформить карту лояльности", call_attendant: "Позвать сотрудника", attendant: "Сотрудник",
    card: "Карта", points: "Баллы", coupon: "Купон", pay: "Оплатить", empty_cart: "Отсканируйте товар",
    subtotal: "Сумма", you_save: "Ваша экономия", points_paid: "Оплачено баллами", to_pay: "К оплате",
    earn: "Будет начислено баллов", discount: "скидка", kg: "кг",
    age_wait: "{age}+ — сотрудник проверит ваш возраст", age_ok: "{age}+ проверено",
    more_to_level: "Ещё {money} до уровня {level}", level_now: "Ваш уровень: {level}", gift: "Подарок: {name} × {qty}",
    take_receipt: "Возьмите, пожалуйста, чек", thanks: "Спасибо за покупку!",
    receipt_points: "Баланс карты: {balance} баллов", please_call: "Пожалуйста, позовите сотрудника",
    printer_out: "В принтере чеков закончилась бумага", printer_off: "Принтер чеков не отвечает",
    device_lost: "Устройство отключено: {device}", server_lost: "Касса не отвечает",
    unknown_code: "Кода {code} нет в каталоге — обратитесь к сотруднику", error: "Ошибка: {message}",
    card_title: "Ваша карта лояльности", card_how: "Проведите или отсканируйте карту — или введите номер телефона:",
    find_card: "Найти карту", no_card_phone: "На этот номер здесь нет карты.",
    register_new: "Оформить новую карту", cancel: "Назад", ok: "OK", clear: "Стереть",
    points_title: "Оплата баллами", points_have: "Этой покупкой можно оплатить до {points} баллов",
    points_take: "{points} баллов спишут {money}", apply: "Применить", no_points: "Без баллов",
    coupon_title: "Купон или промокод", coupon_how: "Введите код или отсканируйте купон", send: "Отправить",
    pay_title: "Оплата", pay_how: "Вставьте, приложите или проведите банковскую карту на платёжном терминале.",
    pay_device: "Оплатить {money} (платёжный терминал)", paying: "Ждём платёжный терминал…",
    enrol_title: "Оформление карты лояльности", enrol_phone: "Номер вашего мобильного телефона:",
    enrol_terms: "Условия программы (прочтите их полностью):", enrol_consent: "Я согласен с условиями программы",
    enrol_do: "Оформить", enrol_done: "Карта {card} оформлена и привязана к покупке.",
    staff_title: "Сотрудник", staff_name: "Имя сотрудника", staff_wrong: "Неверное имя или PIN-код",
    staff_locked: "Слишком много неверных PIN-кодов; подождите и попробуйте снова", staff_pin: "PIN-код", staff_login: "Войти",
    staff_logout: "Выйти", staff_age: "Подтвердить возраст", staff_cancel: "Отменить покупку",
    staff_reprint: "Повторить последний чек", staff_x: "Печать X-отчёта", staff_z: "Закрыть смену (Z-отчёт)",
    staff_return_hint: "Возврат: отсканируйте штрихкод чека.", staff_remove: "Удалить",
    return_title: "Возврат", return_receipt: "Чек {receipt}", return_all: "Вернуть всё по чеку",
    return_done: "К возврату {money}. Баллов возвращено {restored}, списано {clawed}.",
    reprinted: "Копия печатается.", shift_closed: "Смена {shift} закрыта, Z-отчёт печатается.",
    x_printed: "X-отчёт печатается.", checkout_cancelled: "Покупка отменена.",
    offline_card: "Центральный сервер недоступен: оплата баллами пока ограничена.",
    lang_name: "English",
  },
};
const HEADER = "X-Posterm-Attendant";
const RECEIPT_SCREEN_MS = 20000;
const TOAST_MS = 4000;
const PHONE_DIGITS_MAX = 15;
const PIN_DIGITS_MAX = 12;

const S = {
  lang: "en", settings: {}, view: null, token: null, staff: null, lastReceipt: null,
  faults: {}, toasts: [], linesShown: 0, overlay: null, receiptTimer: null, toastTimer: null, renders: [],
};
window.__posterm = S;  // the browser test reads render times from here

const $ = (id) => document.getElementById(id);

function t(key, vars) {
  const text = (T[S.lang] && T[S.lang][key]) || T.en[key] || key;
  return text.replace(/\{(\w+)\}/g, (_, k) => (vars && k in vars ? String(vars[k]) : ""));
}

function money(minor) {
  const sign = minor < 0 ? "−" : "";
  const abs = Math.abs(minor);
  const whole = String(Math.floor(abs / 100)).replace(/\B(?=(\d{3})+(?!\d))/g, "\u202f");
  const sep = S.lang === "ru" ? "," : ".";
  return `${sign}${whole}${sep}${String(abs % 100).padStart(2, "0")}`;
}

function maskPhone(digits) {
  // every digit but the last two hidden, as the customer types
  return digits.split("").map((d, i) => (i < digits.length - 2 ? "•" : d)).join("");
}

function maskCard(number) {
  return number.length <= 4 ? "****" : "•••• " + number.slice(-4);
}

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "on") for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === "class") el.className = v;
    else if (v === true) el.setAttribute(k, "");
    else if (v !== false && v != null) el.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c != null) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

// ------------------------------------------------------------------ API

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (S.token) headers[HEADER] = S.token;
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = {};
  try { data = await response.json(); } catch (e) { data = {}; }
  if (!response.ok) {
    const err = new Error(data.error || response.statusText);
    err.status = response.status;
    if (response.status === 403 && S.token) staffGone();
    throw err;
  }
  return data;
}

function toast(text, bad) {
  const el = $("toast");
  S.toasts.push(text);  // kept (bounded) so a test can read what was said after it faded
  if (S.toasts.length > 50) S.toasts.shift();
  el.textContent = text;
  el.className = bad ? "toast bad" : "toast";
  el.hidden = false;
  clearTimeout(S.toastTimer);
  S.toastTimer = setTimeout(() => { el.hidden = true; }, TOAST_MS);
}

async function attempt(fn) {
  try { return await fn(); } catch (err) { toast(t("error", { message: err.message }), true); return null; }
}

// ------------------------------------------------------------------ rendering

function applyTexts() {
  document.documentElement.lang = S.lang;
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  $("lang").textContent = t("lang_name");
  $("store").textContent = S.settings.store_name || "";
  $("attract-enrol").hidden = !S.settings.enrolment;
}

function show(screen) {
  for (const id of ["attract", "cart", "receipt"]) $(id).hidden = id !== screen;
  document.body.dataset.screen = screen;
}

function render() {
  applyTexts();
  const view = S.view;
  const open = view && view.state !== "idle";
  if (open) {
    clearTimeout(S.receiptTimer);
    show("cart");
    renderCart(view);
  } else if (document.body.dataset.screen !== "receipt") {
    show("attract");
  }
  const chip = $("card-chip");
  chip.hidden = !(open && view.card);
  if (open && view.card) chip.textContent = `${t("card")} ${maskCard(view.card)}`;
  $("staff-chip").hidden = !S.staff;
  if (S.staff) $("staff-chip").textContent = `${t("attendant")}: ${S.staff.name}`;
  renderFault();
  if (S.overlay && S.overlay.refresh) S.overlay.refresh();
}

function renderCart(view) {
  const quote = view.quote || { lines: [], subtotal: 0, discount: 0, total: 0, to_pay: 0, redeem: {}, accrual: {} };
  const list = $("lines");
  list.replaceChildren();
  view.lines.forEach((line, i) => list.append(lineItem(line, quote.lines[i] || {}, i >= S.linesShown)));
  if (!view.lines.length) list.append(h("li", { class: "empty" }, t("empty_cart")));
  S.linesShown = view.lines.length;
  list.lastElementChild && list.lastElementChild.scrollIntoView({ block: "nearest" });
  renderSums(quote);
  renderLevel(quote.level);
  renderMessages(quote);
  const redeem = quote.redeem || {};
  $("btn-points").disabled = !(view.card && (redeem.max_points || redeem.points));
  $("btn-pay").disabled = !view.lines.length;
  $("btn-pay").textContent = view.lines.length ? `${t("pay")} ${money(quote.to_pay)}` : t("pay");
  S.renders.push({ at: performance.timeOrigin + performance.now(), lines: view.lines.length,
                   qty: view.lines.map((l) => l.qty).join(",") });
  if (S.renders.length > 1000) S.renders.shift();
}

function lineItem(line, priced, fresh) {
  const qty = line.weighed ? `${line.qty} ${t("kg")} × ${money(line.price)}` : `${line.qty} × ${money(line.price)}`;
  const li = h("li", { class: fresh ? "fresh" : "", "data-index": line.index, "data-sku": line.sku },
    h("span", { class: "name" }, line.name),
    h("span", { class: "amount" }, money(priced.amount != null ? priced.amount : line.price)),
    h("span", { class: "detail" }, qty),
    priced.discount ? h("span", { class: "disc" }, `${t("discount")} ${money(-priced.discount)}`) : h("span"));
  if (line.age_min) {
    li.append(h("span", { class: line.age_ok ? "age ok" : "age" },
      t(line.age_ok ? "age_ok" : "age_wait", { age: line.age_min })));
  }
  if (S.staff && S.staff.permissions.includes("void")) {
    li.append(h("button", { class: "remove danger", type: "button",
      on: { click: () => attempt(() => api("DELETE", `/v1/checkout/lines/${line.index}`)) } }, t("staff_remove")));
  }
  return li;
}

function renderSums(quote) {
  const dl = $("sums");
  const redeem = quote.redeem || {};
  const rows = [["subtotal", money(quote.subtotal)]];
  if (quote.discount) rows.push(["you_save", money(quote.discount), "save"]);
  if (redeem.points) rows.push(["points_paid", `${redeem.points} → ${money(-redeem.amount)}`, "save"]);
  rows.push(["to_pay", money(quote.to_pay), "due"]);
  if (quote.accrual && quote.accrual.points) rows.push(["earn", `+${quote.accrual.points}`]);
  dl.replaceChildren(...rows.flatMap(([key, value, cls]) => [
    h("dt", { class: cls || "" }, t(key)), h("dd", { class: cls || "", id: `sum-${key}` }, value)]));
  if (S.view && S.view.card_mode === "offline") dl.append(h("dt", { class: "save" }, t("offline_card")), h("dd"));
}

function renderLevel(level) {
  const box = $("level");
  box.hidden = !level;
  if (!level) return;
  if (level.next) {
    $("level-text").textContent = t("more_to_level", { money: money(level.to_next), level: cap(level.next) });
    const have = level.cumulative_min_next ? 1 - level.to_next / level.cumulative_min_next : 0.5;
    $("level-fill").style.width = `${Math.max(4, Math.min(100, Math.round(have * 100)))}%`;
  } else {
    $("level-text").textContent = t("level_now", { level: cap(level.type) });
    $("level-fill").style.width = "100%";
  }
}

function cap(text) { return text ? text[0].toUpperCase() + text.slice(1) : ""; }

function renderMessages(quote) {
  const items = (quote.messages || []).map((m) => h("li", {}, m.text));
  for (const g of quote.gifts || []) items.push(h("li", {}, t("gift", { name: g.name || g.sku, qty: g.qty })));
  $("messages").replaceChildren(...items);
}

// ------------------------------------------------------------------ faults

function renderFault() {
  const f = S.faults;
  const first = f.connection || f.printer || Object.values(f.devices || {})[0];
  $("fault").hidden = !first;
  if (!first) return;
  $("fault-title").textContent = t(first.key, first.vars);
  $("fault-detail").textContent = first.detail || "";
}

function onPrinter(ev) {
  if (ev.online && ev.paper !== "out") delete S.faults.printer;
  else S.faults.printer = { key: ev.paper === "out" ? "printer_out" : "printer_off", detail: ev.detail };
  renderFault();
}

function onDevice(ev) {
  S.faults.devices = S.faults.devices || {};
  if (ev.state === "attached" || ev.state === "ok") delete S.faults.devices[ev.device];
  else if (ev.state === "detached" || ev.state === "error") {
    S.faults.devices[ev.device] = { key: "device_lost", vars: { device: ev.device }, detail: ev.detail };
  }
  renderFault();
}

// ------------------------------------------------------------------ panels

function openPanel(build) {
  const panel = $("panel");
  const spec = build(panel) || {};
  S.overlay = spec;
  $("overlay").hidden = false;
  if (spec.refresh) spec.refresh();
}

function closePanel() {
  S.overlay = null;
  $("overlay").hidden = true;
  $("panel").replaceChildren();
}

function keypad(onDigit, onClear) {
  const keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "⌫", "0", "C"];
  return h("div", { class: "keypad" }, keys.map((k) => h("button", { type: "button", "data-key": k,
    on: { click: () => (k === "C" ? onClear(true) : k === "⌫" ? onClear(false) : onDigit(k)) } }, k)));
}

function digitsEntry(maxDigits, masker) {
  const state = { digits: "" };
  const entry = h("div", { class: "entry mono", "data-entry": "" });
  state.el = entry;
  state.update = () => { entry.textContent = masker(state.digits); };
  state.pad = keypad((d) => { if (state.digits.length < maxDigits) state.digits += d; state.update(); },
    (all) => { state.digits = all ? "" : state.digits.slice(0, -1); state.update(); });
  return state;
}

function cardPanel(panel) {
  const phone = digitsEntry(PHONE_DIGITS_MAX, maskPhone);
  const error = h("p", { class: "error" });
  const enrol = h("button", { type: "button", class: "secondary", hidden: !S.settings.enrolment,
    on: { click: () => openPanel(enrolPanel) } }, t("register_new"));
  const find = async () => {
    error.textContent = "";
    try {
      await api("POST", "/v1/checkout/phone", { phone: phone.digits });
      closePanel();
    } catch (err) {
      error.textContent = err.status === 404 ? t("no_card_phone") : err.message;
    }
    phone.digits = "";
    phone.update();
  };
  panel.replaceChildren(h("h2", {}, t("card_title")), h("p", {}, t("card_how")), phone.el, phone.pad, error,
    h("div", { class: "row" },
      h("button", { type: "button", class: "secondary", on: { click: closePanel } }, t("cancel")), enrol,
      h("button", { type: "button", class: "primary", id: "find-card", on: { click: find } }, t("find_card"))));
  return { refresh: () => { if (S.view && S.view.card) closePanel(); }, name: "card" };
}

function pointsPanel(panel) {
  const redeem = (S.view.quote && S.view.quote.redeem) || {};
  const max = Math.max(redeem.max_points || 0, redeem.points || 0);
  const value = S.settings.point_value || 0;
  const slider = h("input", { type: "range", min: 0, max, step: 1, value: redeem.points || max, id: "points-slider" });
  const says = h("p", { class: "big", id: "points-says" });
  const update = () => { says.textContent = t("points_take", { points: slider.value, money: money(slider.value * value) }); };
  slider.addEventListener("input", update);
  update();
  const apply = async (points) => {
    if (await attempt(() => api("POST", "/v1/checkout/redeem", { points }))) closePanel();
  };
  panel.replaceChildren(h("h2", {}, t("points_title")), h("p", {}, t("points_have", { points: max })), slider, says,
    h("div", { class: "row" },
      h("button", { type: "button", class: "secondary", on: { click: closePanel } }, t("cancel")),
      h("button", { type: "button", on: { click: () => apply(0) } }, t("no_points")),
      h("button", { type: "button", class: "primary", id: "points-apply",
        on: { click: () => apply(Number(slider.value)) } }, t("apply"))));
  return { name: "points" };
}

function couponPanel(panel) {
  const input = h("input", { type: "text", id: "coupon-code", maxlength: 32, autocomplete: "off" });
  const error = h("p", { class: "error" });
  const send = async () => {
    error.textContent = "";
    try {
      await api("POST", "/v1/checkout/coupon", { code: input.value.trim() });
      closePanel();
    } catch (err) {
      error.textContent = err.message;  // the daemon's one line: unknown, used, expired, …
    }
  };
  panel.replaceChildren(h("h2", {}, t("coupon_title")), h("p", {}, t("coupon_how")), input, error,
    h("div", { class: "row" },
      h("button", { type: "button", class: "secondary", on: { click: closePanel } }, t("cancel")),
      h("button", { type: "button", class: "primary", on: { click: send } }, t("send"))));
  input.focus();
  // a coupon's barcode goes to the checkout by itself; any other unknown code lands here
  return { name: "coupon", scanned: (code) => { input.value = code; send(); } };
}

function payPanel(panel) {
  const quote = S.view.quote;
  const status = h("p", { class: "big" }, t("pay_how"));
  const back = async () => { await attempt(() => api("DELETE", "/v1/checkout/payment")); closePanel(); };
  const pay = async (button) => {
    button.disabled = true;
    status.textContent = t("paying");
    const sale = await attempt(() => api("POST", "/v1/checkout/pay", { method: "card" }));
    button.disabled = false;
    if (sale) { closePanel(); showReceipt(sale); } else status.textContent = t("pay_how");
  };
  const device = h("button", { type: "button", class: "primary", id: "pay-device" },
    t("pay_device", { money: money(quote.to_pay) }));
  device.addEventListener("click", () => pay(device));
  panel.replaceChildren(h("h2", {}, t("pay_title")), status, h("div", { class: "row" },
    h("button", { type: "button", class: "secondary", on: { click: back } }, t("cancel")), device));
  return { name: "pay" };
}

function showReceipt(sale) {
  S.lastReceipt = sale.receipt;
  S.linesShown = 0;
  show("receipt");
  const img = h("img", { alt: sale.receipt, src: `/v1/receipts/${encodeURIComponent(sale.receipt)}/qr.svg` });
  $("qr").replaceChildren(img);
  $("receipt-id").textContent = sale.receipt;
  $("receipt-points").textContent = sale.balance_after != null ? t("receipt_points", { balance: sale.balance_after }) : "";
  clearTimeout(S.receiptTimer);
  S.receiptTimer = setTimeout(() => { if (document.body.dataset.screen === "receipt") show("attract"); }, RECEIPT_SCREEN_MS);
}

function enrolPanel(panel) {
  const phone = digitsEntry(PHONE_DIGITS_MAX, maskPhone);
  const consent = h("input", { type: "checkbox", id: "enrol-consent" });
  const error = h("p", { class: "error" });
  const register = async () => {
    error.textContent = "";
    try {
      const card = await api("POST", "/v1/cards", { phone: phone.digits, consent: consent.checked,
                                                   terms_version: S.settings.terms_version });
      phone.digits = "";
      await api("POST", "/v1/checkout/card", { number: card.card });
      closePanel();
      toast(t("enrol_done", { card: maskCard(card.card) }));
    } catch (err) {
      error.textContent = err.message;
    }
  };
  panel.replaceChildren(h("h2", {}, t("enrol_title")), h("p", {}, t("enrol_phone")), phone.el, phone.pad,
    h("p", {}, t("enrol_terms")), h("div", { class: "terms", id: "terms" }, S.settings.terms || ""),
    h("label", { class: "consent" }, consent, t("enrol_consent")), error,
    h("div", { class: "row" },
      h("button", { type: "button", class: "secondary", on: { click: closePanel } }, t("cancel")),
      h("button", { type: "button", class: "primary", id: "enrol-do", on: { click: register } }, t("enrol_do"))));
  return { name: "enrol" };
}

// ------------------------------------------------------------------ the attendant

function staffPanel(panel, then) {
  if (S.staff) return staffMenu(panel);
  const name = h("input", { type: "text", id: "staff-name", maxlength: 32, autocomplete: "off",
                            placeholder: t("staff_name") });
  const pin = digitsEntry(PIN_DIGITS_MAX, (d) => "•".repeat(d.length));
  pin.el.id = "staff-pin";
  const error = h("p", { class: "error" });
  const login = async () => {
    error.textContent = "";
    try {
      const session = await api("POST", "/v1/attendant/session", { name: name.value.trim(), pin: pin.digits });
      S.token = session.token;
      S.staff = session;
      pin.digits = "";
      render();
      if (then) { closePanel(); then(); } else openPanel(staffMenu);
    } catch (err) {
      error.textContent = err.status === 401 ? t("staff_wrong") : err.status === 429 ? t("staff_locked") : err.message;
      pin.digits = "";
      pin.update();
    }
  };
  panel.replaceChildren(h("h2", {}, t("staff_title")), name, h("p", {}, t("staff_pin")), pin.el, pin.pad, error,
    h("div", { class: "row" },
      h("button", { type: "button", class: "secondary", on: { click: closePanel } }, t("cancel")),
      h("button", { type: "button", class: "primary", id: "staff-login", on: { click: login } }, t("staff_login"))));
  return { name: "staff-login" };
}

function staffMenu(panel) {
  const can = (p) => S.staff && S.staff.permissions.includes(p);
  const view = S.view || { state: "idle", lines: [] };
  const act = (fn) => async () => { if (await attempt(fn)) closePanel(); };
  const items = [];
  if (view.age_check && can("age")) {
    items.push(h("button", { type: "button", class: "primary", id: "staff-age",
      on: { click: act(() => api("POST", "/v1/checkout/age")) } }, t("staff_age")));
  }
  if (view.state !== "idle" && can("cancel")) {
    items.push(h("button", { type: "button", class: "danger", id: "staff-cancel", on: { click: act(async () => {
      await api("POST", "/v1/checkout/cancel");
      toast(t("checkout_cancelled"));
      return true;
    }) } }, t("staff_cancel")));
  }
  if (S.lastReceipt && can("reprint")) {
    items.push(h("button", { type: "button", on: { click: act(async () => {
      await api("POST", `/v1/receipts/${encodeURIComponent(S.lastReceipt)}/print`);
      toast(t("reprinted"));
      return true;
    }) } }, t("staff_reprint")));
  }
  if (can("shift") && view.state === "idle") {
    items.push(h("button", { type: "button", on: { click: act(async () => {
      await api("POST", "/v1/shift/print");
      toast(t("x_printed"));
      return true;
    }) } }, t("staff_x")));
    items.push(h("button", { type: "button", class: "danger", on: { click: act(async () => {
      const shift = await api("GET", "/v1/shift");
      await api("POST", "/v1/shift/close", { shift: shift.shift });
      toast(t("shift_closed", { shift: shift.shift }));
      return true;
    }) } }, t("staff_z")));
  }
  const logout = async () => {
    await attempt(() => api("DELETE", "/v1/attendant/session"));
    staffGone();
    closePanel();
  };
  panel.replaceChildren(h("h2", {}, `${t("staff_title")}: ${S.staff.name} (${S.staff.role})`),
    can("return") ? h("p", {}, t("staff_return_hint")) : null, ...items,
    h("div", { class: "row" },
      h("button", { type: "button", class: "secondary", on: { click: closePanel } }, t("cancel")),
      h("button", { type: "button", id: "staff-logout", on: { click: logout } }, t("staff_logout"))));
  return { name: "staff-menu" };
}

function staffGone() {
  S.token = null;
  S.staff = null;
  render();
}

function returnPanel(receipt) {
  openPanel((panel) => {
    const error = h("p", { class: "error" });
    const doReturn = async () => {
      try {
        const ret = await api("POST", "/v1/returns", { receipt });
        const refund = ret.refund;
        closePanel();
        toast(t("return_done", { money: money(refund.money), restored: refund.points_restored,
                                 clawed: refund.points_clawed }));
      } catch (err) { error.textContent = err.message; }
    };
    panel.replaceChildren(h("h2", {}, t("return_title")), h("p", { class: "big mono" }, t("return_receipt", { receipt })),
      error, h("div", { class: "row" },
        h("button", { type: "button", class: "secondary", on: { click: closePanel } }, t("cancel")),
        h("button", { type: "button", class: "primary", id: "return-all", on: { click: doReturn } }, t("return_all"))));
    return { name: "return" };
  });
}

// ------------------------------------------------------------------ events

const HANDLERS = {
  hello: (data) => { S.view = data; },
  // the pay panel stays open on a quote: events may arrive after the API's answer that opened it
  quote: (data) => { S.view = data; },
  checkout_closed: (data) => {
    S.view = { state: "idle", lines: [] };
    S.linesShown = 0;
    if (data.reason !== "paid" && S.overlay && S.overlay.name !== "staff-menu") closePanel();
  },
  unknown_code: (data) => {
    if (S.overlay && S.overlay.scanned) S.overlay.scanned(data.code);
    else toast(t("unknown_code", { code: data.code }), true);
  },
  receipt_scanned: (data) => {
    const go = () => returnPanel(data.receipt);
    if (S.staff && S.staff.permissions.includes("return")) go();
    else openPanel((panel) => staffPanel(panel, go));
  },
  printer: onPrinter,
  device: onDevice,
  error: (data) => toast(t("error", { message: data.message || "" }), true),
  shutdown: () => { S.faults.connection = { key: "server_lost" }; },
};

function connect() {
  const source = new EventSource("/v1/events");
  for (const [kind, fn] of Object.entries(HANDLERS)) {
    source.addEventListener(kind, (ev) => {
      let data = {};
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      fn(data);
      render();
    });
  }
  source.addEventListener("overflow", () => { source.close(); setTimeout(connect, 500); });
  source.onopen = () => { delete S.faults.connection; render(); };
  source.onerror = () => {
    S.faults.connection = { key: "server_lost" };
    renderFault();
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  };
}

function wire() {
  $("lang").addEventListener("click", () => { S.lang = S.lang === "ru" ? "en" : "ru"; render(); });
  $("help").addEventListener("click", () => openPanel((p) => staffPanel(p)));
  $("fault-staff").addEventListener("click", () => openPanel((p) => staffPanel(p)));
  $("attract-enrol").addEventListener("click", () => openPanel(enrolPanel));
  $("btn-card").addEventListener("click", () => openPanel(cardPanel));
  $("btn-points").addEventListener("click", () => openPanel(pointsPanel));
  $("btn-coupon").addEventListener("click", () => openPanel(couponPanel));
  $("btn-pay").addEventListener("click", async () => {
    if (S.view.age_check) {
      toast(t("age_wait", { age: Math.max(...S.view.lines.map((l) => l.age_min || 0)) }), true);
      openPanel((panel) => staffPanel(panel, () => openPanel(staffMenu)));
      return;
    }
    if (await attempt(() => api("POST", "/v1/checkout/payment"))) openPanel(payPanel);
  });
}

async function start() {
  try { S.settings = await api("GET", "/v1/screen"); } catch (e) { S.settings = {}; }
  S.lang = S.settings.language || "en";
  wire();
  render();
  connect();
}

start();
