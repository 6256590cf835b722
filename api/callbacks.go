package api

import (
	"net/http"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/engine"
)

// callbackByToken takes a callback at a task's own URL (BaseURL +
// /callbacks/{token}): the unguessable token is the credential. The raw body
// and its Content-Type go to the engine, which decodes them with the waiting
// node's codec (JSON, form, or a provider's signed envelope).
func (s *server) callbackByToken(w http.ResponseWriter, r *http.Request) error {
	return s.callback(w, r, engine.CallbackRequest{Token: r.PathValue("token")})
}

// callbackByRef takes a callback from a service that drives its own task by
// ref; it needs the bearer token.
func (s *server) callbackByRef(w http.ResponseWriter, r *http.Request) error {
	return s.callback(w, r, engine.CallbackRequest{
		Process: r.PathValue("process"), Ref: r.PathValue("ref"), Actor: s.actor(r),
	})
}

// callbackByNode takes a callback at a node's shared URL; the task is found
// by the node's task_id_path in the body, and the node's codec (a
// provider's signature) authenticates it.
func (s *server) callbackByNode(w http.ResponseWriter, r *http.Request) error {
	return s.callback(w, r, engine.CallbackRequest{Process: r.PathValue("process"), Node: r.PathValue("node")})
}

// callback delivers req with the request's body and answers the engine's
// result: accepted and duplicate 200, not_waiting 409, unknown 404. A body
// the node refuses is an error (401 bad signature, 400 invalid).
func (s *server) callback(w http.ResponseWriter, r *http.Request, req engine.CallbackRequest) error {
	body, err := s.readBody(r)
	if err != nil {
		return err
	}
	req.ContentType, req.Body = r.Header.Get("Content-Type"), body
	res, err := s.eng.Callback(r.Context(), req)
	if err != nil {
		return err
	}
	status := http.StatusOK
	switch res.Result {
	case engine.CallbackNotWaiting:
		status = statusOf(conveyor.ENotWaiting)
	case engine.CallbackUnknown:
		status = statusOf(conveyor.ENotFound)
	}
	writeJSON(w, status, res)
	return nil
}
