// Package liqpay is a local simulator of LiqPay's server-to-server API for
// card holds, so that the engine and its tests talk real HTTP on loopback
// instead of to liqpay.ua.
//
// Facts come from /work/shared/reference/holds.md §1 (cited below as §1.x);
// everything marked [inferred] is the sandbox's own choice where LiqPay's
// behaviour is undocumented.
//
// # Wire format (§1.1)
//
// Requests are POST application/x-www-form-urlencoded with two fields: data,
// standard Base64 (with padding) of a UTF-8 JSON object, and signature,
// Base64 of the raw SHA-1 of private_key + data + private_key (the hash is
// over the Base64 string). Sign, Encode and Decode implement the envelope.
// JSON scalars are read leniently: "version":"3" and "version":3 are the same,
// as are "amount":"1.50" and "amount":1.50. Amounts are exact decimals in
// major units with at most two fractional digits; they never pass through
// float64.
//
// Replies to /api/request are plain JSON objects, not envelopes, and come
// with HTTP 200 even when the business answer is a failure. A request that
// fails as a whole gets {"result":"error","status":"error","err_code":...,
// "err_description":...}; an action on a payment gets the payment object
// (§1.3 fields) with "result":"ok", or "result":"error" when the payment's
// status is failure or error. Error codes used: invalid_signature,
// public_key_not_found, err_api_action (no or unknown action), err_missing,
// err_wrong (malformed form, Base64, JSON or parameter; unknown
// sandbox_fault knob; version other than 3), err_wrong_currency, err_phone,
// err_path (bad server_url/result_url; unknown endpoint), err_card,
// order_id_duplicate, payment_not_found, payment_err_status,
// err_amount_hold, err_sms_otp, limit, 9859, 9851 (expired card) (§1.10).
//
// # Endpoints
//
// POST .../api/request and its alias POST .../api/payment/status (§1.7)
// accept every action. Routing is by path suffix, so the Server works
// mounted under a prefix with http.StripPrefix. Any other path answers 404
// and any other method 405, with a JSON error body.
//
// # Actions
//
// hold (§1.3) needs version, public_key, action, amount (> 0), currency
// (UAH, USD, EUR), description, order_id (≤ 255 characters, unique per
// public_key), card, card_exp_month, card_exp_year, card_cvv and phone;
// ip, server_url, result_url, sandbox, prepare and sender_* are optional.
// A second hold with a used order_id is order_id_duplicate, even when it is
// an exact repeat of an accepted request resent after a client timeout:
// that is LiqPay's behaviour, and a client unsure whether its hold landed
// must ask action status. prepare=1 answers the status the hold would get
// without creating a payment. sandbox=1 is echoed but changes no status
// [inferred: hold_wait is not a final success, so it never becomes
// "sandbox"].
//
// confirm (§1.4) takes the payment's token (as token or confirm_token): an
// otp_verify payment with otp equal to Config.OTP, a 3ds_verify payment as
// is, a cvv_verify payment with a well-formed card_cvv, each go to
// hold_wait [inferred: the spec's enum omits it, the flow needs it]. A wrong
// OTP answers err_sms_otp and the payment stays otp_verify; the third wrong
// one fails it (status failure, err_code err_sms_otp) [inferred]. Confirming
// a payment in any other status is payment_err_status.
//
// hold_completion (§1.5) captures a hold_wait payment by order_id: amount
// omitted captures everything [inferred from the official example], a
// smaller amount captures part (the rest is released), a larger one is
// err_amount_hold. The payment becomes success with completion_date,
// amount_debit and amount_credit (the captured amount); action stays "hold".
// Repeating a completion with the same effective amount replays the stored
// success object, so a client that timed out may retry [inferred, §5.2 rule
// 3]; any other completion of a non-hold_wait payment is payment_err_status.
//
// refund (§1.6) on a hold_wait payment releases the whole hold; on a
// success payment it refunds amount (default: all captured) and adds
// refund_amount and refund_date_last. Both end reversed [inferred]; a refund
// of a reversed payment replays the stored object; other statuses are
// payment_err_status. Refund replies carry wait_amount false.
//
// status (§1.7) returns the payment object; unknown order_id is
// payment_not_found.
//
// A hold_wait payment not completed or refunded within Config.HoldValidity
// (30 days, §1.5) of create_date reads as reversed with err_code "expired"
// and err_description "hold expired" [inferred: LiqPay documents no status
// for it]; its end_date is the expiry instant. The check is lazy: it runs
// when a request touches the payment, or on Server.Sweep, against
// Config.Clock.
//
// # Payment object
//
// Fields (§1.3): action "hold", type "hold", version 3, status, payment_id
// and transaction_id (increasing integers), acq_id, order_id,
// liqpay_order_id, public_key, amount, currency, description,
// sender_card_mask2 (first six digits * last two, e.g. 424242*42),
// sender_card_type, sender_card_bank, sender_card_country (804),
// sender_phone, is_3ds, mpi_eci, create_date and end_date (Unix
// milliseconds), ip and the commissions (0); plus err_code and
// err_description when set, token while a *_verify status lasts,
// redirect_to with 3ds_verify, and the completion/refund fields above.
// The sandbox never stores or returns the card number or CVV: it keeps
// only the mask. redirect_to points below the sandbox's own URL, where no
// page is served; confirm through the API.
//
// # Test cards (§1.2)
//
//	4242424242424242  hold_wait at once
//	4000000000003089  otp_verify, confirm with the OTP -> hold_wait
//	4000000000003063  3ds_verify with redirect_to, confirm -> hold_wait
//	4000000000003055  cvv_verify, confirm with card_cvv -> hold_wait
//	4000000000000002  failure, err_code limit
//	4000000000009995  failure, err_code 9859 (insufficient funds)
//	other, Luhn-valid hold_wait at once
//	other, not Luhn   error, err_code err_card (no payment is created)
//
// A card whose expiry month is over by the sandbox clock fails with
// err_code 9851 [inferred].
//
// # Callbacks (§1.8)
//
// When a payment's status changes and its hold carried server_url, the
// sandbox POSTs data and signature (the same envelope, signed with the
// merchant's private key) whose JSON is the payment object. Callbacks are
// sent asynchronously, one goroutine per delivery, only after the reply to
// the request that caused them is written; one payment's callbacks go out
// in order. Any 2xx is success; anything else is retried CallbackRetries
// times with a doubling backoff from Config.CallbackBackoff [inferred: the
// retry policy is undocumented]. Close waits (up to 5 s) for deliveries in
// flight.
//
// # Recording
//
// Calls lists every request with its action, order_id, public_key, time,
// result, status and err_code; Callbacks lists every callback with its URL,
// status, attempts and the receiver's HTTP status.
//
// # Fault knobs
//
// Knobs are set for everything in Config.Faults or per request in the
// request JSON's sandbox_fault field: comma-separated names, some with a Go
// duration, e.g. "sandbox_fault":"latency=200ms,duplicate_callback". Knobs
// act only on requests that pass authentication. Callback knobs sent with a
// hold follow that payment for all its callbacks; sent with a later request
// they shape the callbacks that request causes.
//
//	latency=D               the request takes effect at once, its reply is held
//	                        back for D or until the client gives up; the effect
//	                        stands either way (a "did my timed-out hold happen?"
//	                        test)
//	http500                 answer HTTP 500 with a JSON error body; nothing is done
//	timeout                 never answer; wait until the client gives up (or
//	                        Close); nothing is done
//	drop_callback           record the callbacks, never send them
//	duplicate_callback      send every callback twice
//	delay_callback=D        wait D of real time before sending each callback
//	bad_signature_callback  sign callbacks with a wrong key
//	pending                 the hold answers processing and stays so for ever
//	pending=D               processing until D of sandbox-clock time after
//	                        create_date, then the card's real outcome (with its
//	                        callback); evaluated lazily, on Sweep, and by a
//	                        real-time timer
//	reorder_callbacks       hold back each intermediate-status callback until the
//	                        payment's next callback has been sent, so e.g.
//	                        success arrives before hold_wait
//
// # Not simulated
//
// /api/3/checkout, token payments (card_token, sandbox_token), wallets,
// sender_verify and other confirmations, confirm-token expiry, rro_info,
// the raw-JSON data of the official Python SDK and the SHA3-256 "version 7"
// scheme (§1.1 quirks).
package liqpay
