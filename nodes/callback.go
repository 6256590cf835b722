package nodes

import (
	"errors"
	"slices"
	"time"

	conveyor "github.com/conveyor-dev/conveyor"
	"github.com/conveyor-dev/conveyor/processes"
)

// Callback waits for an external HTTP callback, with a time limit. The body is
// decoded by the codec (LiqPay's envelope is verified with the named secret),
// checked against the optional schema and guard, and saved under save_as
// (callback by default); the task then moves on by next. A body that fails the
// checks is refused and the task stays. task_id_path names a body field that
// holds the task's id (as Corezoid's "path to task_id").
//
//	receive_callback:
//	  type: callback
//	  codec: {name: liqpay, private_key: liqpay_private_key}
//	  task_id_path: obj_id
//	  timeout: 180s
//	  on_timeout: escalation
//	  next: check_status
type Callback struct {
	timeout    time.Duration
	codec      string
	privateKey string
	taskIDPath string
	saveAs     string
	schema     *processes.Schema
	guard      *processes.Expr
	edges      []processes.Edge
}

// CodecConfig names a codec and, for signed ones, the secrets it uses.
type CodecConfig struct {
	Name       string `yaml:"name"`
	PublicKey  string `yaml:"public_key"`
	PrivateKey string `yaml:"private_key"`
}

type callbackConfig struct {
	Codec      codecField `yaml:"codec"`
	TaskIDPath string     `yaml:"task_id_path"`
	Timeout    string     `yaml:"timeout"`
	OnTimeout  string     `yaml:"on_timeout"`
	Next       string     `yaml:"next"`
	SaveAs     string     `yaml:"save_as"`
	Schema     any        `yaml:"schema"` // compiled by c.Schema
	Guard      string     `yaml:"guard"`
}

// DefaultCallbackField is where a callback's body is saved unless save_as says otherwise.
const DefaultCallbackField = "callback"

type callbackKind struct{}

func (callbackKind) Writes(c *processes.NodeContext) []string {
	if n := c.Raw("save_as"); n != nil {
		if !pathRE.MatchString(n.Value) {
			return nil
		}
		return []string{splitPath(n.Value)[0]}
	}
	return []string{DefaultCallbackField}
}

func (callbackKind) Compile(c *processes.NodeContext) processes.Spec {
	var cfg callbackConfig
	if !c.Decode(&cfg) {
		return nil
	}
	requireTarget(c, "next", cfg.Next)
	cb := &Callback{codec: CodecJSON, taskIDPath: cfg.TaskIDPath, saveAs: cfg.SaveAs}
	if cb.saveAs == "" {
		cb.saveAs = DefaultCallbackField
	}
	if !pathRE.MatchString(cb.saveAs) {
		c.Errorf("save_as", "bad field name %q", cb.saveAs)
	}
	cb.edges = edge(c, nil, OutNext, "next", cfg.Next)
	cb.edges = edge(c, cb.edges, OutTimeout, "on_timeout", cfg.OnTimeout)
	if cfg.Timeout == "" {
		c.Errorf("", "missing timeout: a callback node must not wait forever")
	} else {
		cb.timeout = c.Duration("timeout", cfg.Timeout)
	}
	if cfg.OnTimeout == "" {
		c.Errorf("", "missing on_timeout: name the node the task goes to when no callback comes")
	}
	codec := compileCodec(c, "codec", CodecConfig(cfg.Codec), "verifies callbacks")
	cb.codec, cb.privateKey = codec.Name, codec.PrivateKey
	cb.schema = c.Schema("schema")
	if cfg.Guard != "" {
		cb.guard = c.Expr("guard", cfg.Guard, false)
	}
	return cb
}

// Class implements processes.Spec.
func (*Callback) Class() processes.Class { return processes.Wait }

// Edges implements processes.Spec.
func (cb *Callback) Edges() []processes.Edge { return cb.edges }

// Timeout implements processes.Timed.
func (cb *Callback) Timeout() time.Duration { return cb.timeout }

// TaskIDPath is the body field that holds the task's id, "" when unset.
func (cb *Callback) TaskIDPath() string { return cb.taskIDPath }

// SaveAs is the data field the body is saved in.
func (cb *Callback) SaveAs() string { return cb.saveAs }

// Deadline implements Waiter.
func (cb *Callback) Deadline(in *Input) (time.Time, error) { return in.Now.Add(cb.timeout), nil }

// Expire implements Waiter.
func (cb *Callback) Expire(*Input) Result { return Result{Outcome: OutTimeout} }

// Decode turns a raw callback body into an object with the node's codec. A
// body whose signature does not verify gets an EUnauthorized error.
func (cb *Callback) Decode(in *Input, contentType string, body []byte) (map[string]any, error) {
	switch cb.codec {
	case CodecLiqPay:
		key := in.Secrets[cb.privateKey]
		if key == "" {
			return nil, conveyor.Errorf(conveyor.EInternal, "secret %s is not configured", cb.privateKey)
		}
		return liqpayDecode(key, body)
	case CodecForm:
		return decodeForm(body)
	}
	return DecodeBody(contentType, body)
}

// Accept checks a decoded body against the schema and guard and returns the
// move it makes. A refused body gets an EInvalid error and must not move the
// task.
func (cb *Callback) Accept(in *Input, body map[string]any) (Result, error) {
	if cb.schema != nil {
		if err := validateCallback(cb.schema, body); err != nil {
			return Result{}, conveyor.Errorf(conveyor.EInvalid, "callback refused: %v", err)
		}
	}
	if cb.guard != nil {
		ok, err := cb.guard.Bool(withValue(in.Env, splitPath(cb.saveAs), exprValue(body)))
		if err != nil {
			return Result{}, conveyor.Errorf(conveyor.EInvalid, "callback refused: guard: %v", err)
		}
		if !ok {
			return Result{}, conveyor.Errorf(conveyor.EInvalid, "callback refused: guard %s is false", cb.guard.Src)
		}
	}
	return Result{Outcome: OutNext, Writes: []Write{{Path: splitPath(cb.saveAs), Value: body}}}, nil
}

// validateCallback checks a callback body against the node's schema: required
// fields must be there, declared fields must be right, and fields the schema
// does not name pass (providers send more than a flow cares about).
func validateCallback(s *processes.Schema, body map[string]any) error {
	var errs processes.InputError
	for _, f := range s.Fields {
		if v, ok := body[f.Name]; f.Required && (!ok || v == nil) {
			errs = append(errs, processes.FieldError{Field: f.Name, Msg: "is required"})
		}
	}
	if err := s.ValidateKnown(body); err != nil {
		var known processes.InputError
		if !errors.As(err, &known) {
			return err
		}
		for _, fe := range known {
			if !slices.Contains(errs, fe) {
				errs = append(errs, fe)
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}
