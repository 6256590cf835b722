package api

import "net/http"

// alarms answers the queue alarms of the current processes and the latest
// crossings.
func (s *server) alarms(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "limit")
	if err != nil {
		return err
	}
	limit, err := limitParam(q)
	if err != nil {
		return err
	}
	report, err := s.eng.Alarms(r.Context(), limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, report)
	return nil
}
