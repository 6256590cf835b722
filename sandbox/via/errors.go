package via

import "net/http"

// Error codes the sandbox puts in the error envelope's status.code. VIA
// documents neither its codes (its example shows "1234") nor the HTTP
// statuses of errors (holds.md §2.1, §2.4); these are the sandbox's own
// [inferred].
const (
	// CodeValidation (400): the body is not a JSON object, a field is
	// missing or malformed, amount is not a positive integer, currency is
	// not UZS, or a fault knob is unknown.
	CodeValidation = "VALIDATION_ERROR"
	// CodeUnauthorized (401): client-id or client-secret is missing or
	// wrong.
	CodeUnauthorized = "UNAUTHORIZED"
	// CodeHoldNotFound (404): no hold with that holdId for this partner.
	CodeHoldNotFound = "HOLD_NOT_FOUND"
	// CodeMerchantNotFound (404): merchantId is not one of Config.Merchants.
	CodeMerchantNotFound = "MERCHANT_NOT_FOUND"
	// CodeCardNotFound (404): cardToken is not one of Config.Cards.
	CodeCardNotFound = "CARD_NOT_FOUND"
	// CodeNotFound (404): no such endpoint.
	CodeNotFound = "NOT_FOUND"
	// CodeMethodNotAllowed (405): an endpoint was called with a method
	// other than POST.
	CodeMethodNotAllowed = "METHOD_NOT_ALLOWED"
	// CodeInvalidState (409): the hold's status does not allow the
	// operation, e.g. confirm on a cancelled or expired hold.
	CodeInvalidState = "INVALID_STATE"
	// CodeExternalIDConflict (409): the externalId was already used for
	// this merchant with a different body.
	CodeExternalIDConflict = "EXTERNAL_ID_CONFLICT"
	// CodeAmountExceedsHold (422): confirm asked for more than is held.
	CodeAmountExceedsHold = "AMOUNT_EXCEEDS_HOLD"
	// CodeInternal (500): the http500 knob, or a sandbox bug.
	CodeInternal = "INTERNAL_ERROR"
)

// codeInfo is how one error code is presented: its HTTP status and the
// envelope's error.message in VIA's three languages.
type codeInfo struct {
	status     int
	uz, ru, en string
}

// codes is the one table from error code to HTTP status and messages.
var codes = map[string]codeInfo{
	CodeValidation: {http.StatusBadRequest,
		"So'rov parametrlari noto'g'ri", "Неверные параметры запроса", "Invalid request parameters"},
	CodeUnauthorized: {http.StatusUnauthorized,
		"Avtorizatsiyadan o'tilmadi", "Ошибка авторизации", "Authorization failed"},
	CodeHoldNotFound: {http.StatusNotFound,
		"Xold topilmadi", "Холдирование не найдено", "Hold not found"},
	CodeMerchantNotFound: {http.StatusNotFound,
		"Merchant topilmadi", "Мерчант не найден", "Merchant not found"},
	CodeCardNotFound: {http.StatusNotFound,
		"Karta topilmadi", "Карта не найдена", "Card not found"},
	CodeNotFound: {http.StatusNotFound,
		"Metod topilmadi", "Метод не найден", "Method not found"},
	CodeMethodNotAllowed: {http.StatusMethodNotAllowed,
		"HTTP so'rov turi qo'llab-quvvatlanmaydi", "HTTP-метод не поддерживается", "HTTP method not allowed"},
	CodeInvalidState: {http.StatusConflict,
		"Xoldning joriy holatida bu amalni bajarib bo'lmaydi",
		"Операция недоступна в текущем статусе холдирования",
		"Operation not allowed in the hold's current status"},
	CodeExternalIDConflict: {http.StatusConflict,
		"Bu externalId boshqa parametrlar bilan allaqachon ishlatilgan",
		"Этот externalId уже использован с другими параметрами",
		"This externalId was already used with different parameters"},
	CodeAmountExceedsHold: {http.StatusUnprocessableEntity,
		"Yechiladigan summa xoldlangan summadan oshib ketdi",
		"Сумма списания превышает сумму холдирования",
		"Confirm amount exceeds the held amount"},
	CodeInternal: {http.StatusInternalServerError,
		"Ichki xatolik", "Внутренняя ошибка", "Internal error"},
}

// apiError is a request that failed as a whole; it is answered with the
// error envelope.
type apiError struct {
	code   string
	detail string // English, for status.message
}

// Error implements error.
func (e *apiError) Error() string { return e.code + ": " + e.detail }

// fail builds an apiError.
func fail(code, detail string) *apiError {
	return &apiError{code: code, detail: detail}
}

// invalid reports a malformed request or field.
func invalid(detail string) *apiError {
	return fail(CodeValidation, detail)
}

// httpStatus is the HTTP status the error is answered with.
func (e *apiError) httpStatus() int {
	if info, ok := codes[e.code]; ok {
		return info.status
	}
	return http.StatusInternalServerError
}

// errorEnvelope is VIA's error body, the same on every method (holds.md
// §2.1).
type errorEnvelope struct {
	Status struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"status"`
	Error struct {
		Path    string   `json:"path"`
		Message messages `json:"message"`
	} `json:"error"`
}

// messages is a text in VIA's three languages.
type messages struct {
	UZ string `json:"uz"`
	RU string `json:"ru"`
	EN string `json:"en"`
}

// envelope renders e for a request to path.
func (e *apiError) envelope(path string) errorEnvelope {
	info, ok := codes[e.code]
	if !ok {
		info = codes[CodeInternal]
	}
	var env errorEnvelope
	env.Status.Code = e.code
	env.Status.Message = e.detail
	env.Error.Path = path
	env.Error.Message = messages{UZ: info.uz, RU: info.ru, EN: info.en}
	return env
}
