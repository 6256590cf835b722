// Package via is a local simulator of VIA's partner hold API (Uzbekistan,
// UZS; docs.viadev.uz), so that the engine and its tests talk real HTTP on
// loopback instead of to VIA.
//
// Facts come from VIA's hold-create page (/work/shared/seeds/004_*.txt) and
// /work/shared/reference/holds.md §2 (cited below as §2.x); everything
// marked [inferred] is the sandbox's own choice where VIA's behaviour is
// undocumented. A client written against this sandbox should rely only on
// what is marked documented.
//
// # Wire format (§2.1)
//
// Every endpoint is POST. Authentication is two headers, client-id and
// client-secret (Config.Partners; default system / system123, the docs'
// example); the secret is compared in constant time. Bodies are JSON
// objects; the Content-Type header is not checked, because the docs' own
// curl --data examples send application/x-www-form-urlencoded. A body must
// be exactly one valid JSON object: the docs' printed samples are not valid
// JSON (a missing comma after "externalId" in create, §2.1) and are rejected
// like any other malformed body. Unknown fields are ignored.
//
// A success reply is HTTP 200 with {"data":{...}}. An error reply has VIA's
// documented envelope, the same on every method:
//
//	{"status":{"code":"<code>","message":"<detail, English>"},
//	 "error":{"path":"<the URL path called>",
//	          "message":{"uz":"...","ru":"...","en":"..."}}}
//
// VIA documents neither its error codes (the example shows "1234") nor the
// HTTP statuses of errors; the sandbox uses its own [inferred]:
//
//	400 VALIDATION_ERROR      body not one JSON object; a field missing or of the
//	                          wrong type; amount/holdTime not a positive integer;
//	                          currency not "UZS"; holdId in query and body
//	                          disagree; unknown fault knob
//	401 UNAUTHORIZED          client-id or client-secret missing or wrong
//	404 HOLD_NOT_FOUND        no such holdId for this partner
//	404 MERCHANT_NOT_FOUND    merchantId not in Config.Merchants
//	404 CARD_NOT_FOUND        cardToken not in Config.Cards (no hold is created)
//	404 NOT_FOUND             no such endpoint
//	405 METHOD_NOT_ALLOWED    not POST
//	409 INVALID_STATE         the hold's status forbids the operation
//	409 EXTERNAL_ID_CONFLICT  externalId reused with a different body
//	422 AMOUNT_EXCEEDS_HOLD   confirm amount greater than the held amount
//	500 INTERNAL_ERROR        the http500 knob (or a sandbox bug)
//
// Checks run in this order: endpoint, method, credentials, body and knobs,
// fields, then merchant, idempotency, card, hold and state.
//
// Money is an integer number of tiyin (1/100 UZS), never a float: amount is
// accepted as a JSON integer or a string of digits (10000 or "10000"); 0,
// negatives, 100.5, 1e3 and "1 000" are VALIDATION_ERROR.
//
// # Endpoints (§2.2)
//
// Routing is by path suffix, so the Server works mounted under a prefix
// with http.StripPrefix (e.g. /sandbox/via).
//
// POST .../partner/hold/create takes merchantId, cardToken, externalId,
// amount (tiyin, > 0), currency ("UZS") and accounts, all required, and
// note and holdTime, optional. accounts is documented as a string but the
// example sends an object: both are accepted. holdTime is documented "in
// minutes" while the example sends 3600 (60 hours if minutes): the sandbox
// reads minutes, or Config.HoldTimeUnit; omitted it is Config.DefaultHoldTime
// (24 h) [inferred], and more than MaxHoldTime is refused [inferred]. The
// reply is {"data":{"holdId":"phl_…","status":"NEW"}}: holdId is phl_ plus
// 27 base62 characters, KSUID-shaped like the docs' example.
//
// POST .../partner/hold/confirm takes holdId and amount (documented as a
// string, shown as an integer; both accepted). It captures amount from a
// held hold, at most the held amount; a smaller amount releases the rest;
// one capture per hold [inferred, §5.2 rule 1].
//
// POST .../partner/hold/cancel takes holdId and releases the hold.
//
// POST .../partner/hold/info takes holdId and answers {"data":{"holdId",
// "status"}} plus sandbox extras [inferred]: amount (held, tiyin),
// confirmedAmount (captured, tiyin; 0 until CONFIRM_SUCCESS), externalId,
// createdAt and expiresAt (Unix seconds of the sandbox clock).
//
// holdId may come in the query string of a POST with no body, as the docs
// show for cancel and info, or in the JSON body, on all three; if both are
// given they must agree. A hold is visible only to the partner that created
// it [inferred].
//
// # Statuses and their progression
//
// The eleven documented statuses: NEW, CREATE_SUCCESS, CREATE_PENDING,
// CREATE_ERROR, CONFIRM_SUCCESS, CONFIRM_PENDING, CONFIRM_ERROR,
// CANCEL_SUCCESS, CANCEL_PENDING, CANCEL_ERROR, EXPIRED. How a hold moves
// between them is undocumented; the sandbox does this [inferred], with P =
// Config.PendingFor measured on Config.Clock:
//
//	create   reply NEW; the hold is NEW until +P, CREATE_PENDING until +2P,
//	         then CREATE_SUCCESS (or CREATE_ERROR). With P = 0 it is at its
//	         outcome at once (the reply still says NEW, as the docs' example).
//	confirm  reply CONFIRM_PENDING, CONFIRM_SUCCESS after P; with P = 0 the
//	         reply is CONFIRM_SUCCESS.
//	cancel   reply CANCEL_PENDING, CANCEL_SUCCESS after P; with P = 0 the
//	         reply is CANCEL_SUCCESS.
//	expiry   a hold that is capturable (CREATE_SUCCESS, CONFIRM_ERROR or
//	         CANCEL_ERROR) at createdAt + holdTime becomes EXPIRED (§2.2: the
//	         hold is released when its time runs out).
//
// Confirm and cancel need a capturable hold, otherwise INVALID_STATE
// (confirm on NEW, CREATE_PENDING, CREATE_ERROR, CANCEL_*, EXPIRED; cancel
// on a confirmed hold, which would be a refund). CONFIRM_ERROR and
// CANCEL_ERROR come only from the confirm_error and cancel_error knobs;
// they capture or release nothing and leave the hold capturable (§5.1), so
// info reports the error status and a later confirm or cancel is allowed;
// the hold still expires on time. Pending operations finish even if the
// hold time runs out meanwhile; a hold stuck pending for ever never
// expires. Clock-driven changes are applied lazily when a request touches
// the hold, by Server.Sweep, and by a real-time timer per hold.
//
// # Idempotency (§2.4, §5.3) [inferred]
//
// externalId is the idempotency key of create, per merchantId (and per
// partner). The same externalId with the same body (sandbox_fault aside;
// an omitted holdTime equals the default sent explicitly; accounts compare
// as JSON values) answers the original holdId with its current status and
// creates nothing; with a different body it is EXTERNAL_ID_CONFLICT. A
// create that failed before a hold was stored (e.g. CARD_NOT_FOUND) keeps
// no key. Repeating a confirm with the amount of the confirm that is
// pending or done, or a cancel that is pending or done, answers the current
// status; Call.Replay marks these. A confirm with another amount on a
// confirmed hold, and any confirm on a cancelled or expired hold, is
// INVALID_STATE.
//
// # Test card tokens
//
//	VLH8VNWKE3SBBBZEKA86T5PF72ZNTEST  CardSuccess: CREATE_SUCCESS (the docs' token)
//	VLH8VNWKE3SBBBZEKA86T5PF7NOFUNDS  CardInsufficientFunds: CREATE_ERROR
//	VLH8VNWKE3SBBBZEKA86T5PF7PENDING  CardPending: CREATE_PENDING for ever
//	anything else                     404 CARD_NOT_FOUND, no hold
//
// Config.Cards replaces this table. Holds need no OTP: the card was
// verified when it was tokenised (§2.3).
//
// # Webhooks: a sandbox-only extension
//
// VIA documents no callbacks for holds; a faithful client polls info. As
// an opt-in extension (§2.4 proposal), when Config.WebhookURL is set every
// status change of every hold, NEW included, is POSTed there as JSON
// {"holdId","status","externalId","amount","updatedAt"} (see Webhook) with
// header X-Sandbox-Extension: webhook. Webhooks are sent asynchronously,
// only after the reply to the request that caused them is written; one
// hold's webhooks go out in order. Any 2xx is success; anything else is
// retried WebhookRetries times with a doubling backoff from
// Config.WebhookBackoff. Close waits (up to 5 s) for deliveries in flight.
// Off by default.
//
// # Recording
//
// Calls lists every request: path, client-id, holdId, externalId,
// merchantId, amount, HTTP status, resulting status, error code, replay
// flag and knobs. Webhooks lists every webhook with its status, attempts
// and the receiver's HTTP status. Logs (Config.Logger, log/slog) carry the
// same fields; card tokens and client secrets are never recorded, logged or
// returned.
//
// # Fault knobs
//
// Knobs are set for everything in Config.Faults, or per request in the
// JSON body's sandbox_fault field or the X-Sandbox-Fault header:
// comma-separated names, some with a Go duration, e.g.
// "sandbox_fault":"latency=200ms,duplicate_webhook". Knobs act only on
// requests that pass authentication. Webhook knobs sent with a create
// follow that hold for all its webhooks; sent with a later request they
// shape the webhooks that request causes. An unknown knob is
// VALIDATION_ERROR.
//
//	latency=D          the request takes effect at once, its reply is held back
//	                   for D or until the client gives up; the effect stands
//	                   (a "did my timed-out create happen?" test: resend it)
//	http500            answer 500 INTERNAL_ERROR; nothing is done
//	timeout            never answer; wait until the client gives up (or
//	                   Close); nothing is done
//	pending            the operation the request starts stops in its pending
//	                   status for ever: CREATE_PENDING (after NEW for P),
//	                   CONFIRM_PENDING or CANCEL_PENDING
//	pending=D          that operation's pending time is D instead of P, so it
//	                   resolves after all
//	create_error       create ends CREATE_ERROR whatever the card
//	confirm_error      confirm ends CONFIRM_ERROR; nothing captured, hold
//	                   still capturable
//	cancel_error       cancel ends CANCEL_ERROR; nothing released, hold still
//	                   capturable
//	drop_webhook       record webhooks, never send them
//	duplicate_webhook  send every webhook twice
//	delay_webhook=D    wait D of real time before sending each webhook
//	reorder_webhooks   hold back each intermediate-status webhook until the
//	                   hold's next webhook has been sent, so e.g.
//	                   CREATE_SUCCESS arrives before NEW; one held back when
//	                   nothing follows is never sent
//
// # Not simulated
//
// Card registration and OTP, cards by phone, one-step payments (§2.3), any
// base URL or TLS, rate limits, and VIA's real error codes and HTTP
// statuses, which are unknown.
package via
