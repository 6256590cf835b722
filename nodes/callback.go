package nodes

import (
	"errors"
	"fmt"
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
//
// Instead of timeout, until names an absolute deadline taken from the data
// (RFC 3339 text or Unix seconds), e.g. a hold's validity. guards lists
// conditions the body must meet, each with the message a refused sender gets:
//
//	guards:
//	  - {when: 'callback.command in ["capture", "cancel"]', message: "unknown command"}
//	  - {when: 'callback.amount == nil || dec_cmp(callback.amount, held) <= 0', message: "capture above the held amount"}
type Callback struct {
	timeout    time.Duration
	until      *processes.Template
	guards     []guard
	codec      string
	privateKey string
	taskIDPath string
	saveAs     string
	schema     *processes.Schema
	edges      []processes.Edge
}

// guard is a condition a callback body must meet, and why it is refused.
type guard struct {
	when    *processes.Expr
	message *processes.Template
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
	Until      string     `yaml:"until"`
	OnTimeout  string     `yaml:"on_timeout"`
	Next       string     `yaml:"next"`
	SaveAs     string     `yaml:"save_as"`
	Schema     any        `yaml:"schema"` // compiled by c.Schema
	Guard      string     `yaml:"guard"`
	Guards     []struct {
		When    string `yaml:"when"`
		Message string `yaml:"message"`
	} `yaml:"guards"`
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
	switch {
	case cfg.Timeout != "" && cfg.Until != "":
		c.Errorf("until", "give either timeout or until, not both")
	case cfg.Timeout != "":
		cb.timeout = c.Duration("timeout", cfg.Timeout)
	case cfg.Until != "":
		cb.until = c.Template("until", cfg.Until, processes.UseData)
	default:
		c.Errorf("", "missing timeout (or until): a callback node must not wait forever")
	}
	if cfg.OnTimeout == "" {
		c.Errorf("", "missing on_timeout: name the node the task goes to when no callback comes")
	}
	codec := compileCodec(c, "codec", CodecConfig(cfg.Codec), "verifies callbacks")
	cb.codec, cb.privateKey = codec.Name, codec.PrivateKey
	cb.schema = c.Schema("schema")
	if cfg.Guard != "" {
		cb.guards = append(cb.guards, guard{when: c.Expr("guard", cfg.Guard, false)})
	}
	for i, g := range cfg.Guards {
		path := fmt.Sprintf("guards[%d]", i)
		if g.When == "" {
			c.Errorf(path, "guard without when")
			continue
		}
		gd := guard{when: c.Expr(path+".when", g.When, false)}
		if g.Message != "" {
			gd.message = c.Template(path+".message", g.Message, processes.UseData)
		}
		cb.guards = append(cb.guards, gd)
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
func (cb *Callback) Deadline(in *Input) (time.Time, error) {
	if cb.until == nil {
		return in.Now.Add(cb.timeout), nil
	}
	v, err := cb.until.Render(in.Env)
	if err != nil {
		return time.Time{}, err
	}
	return parseTime(v)
}

// Expire implements Waiter.
func (cb *Callback) Expire() Result { return Result{Outcome: OutTimeout} }

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
	if len(cb.guards) > 0 {
		env := withValue(in.Env, splitPath(cb.saveAs), processes.ExprValue(body))
		for _, g := range cb.guards {
			ok, err := g.when.Bool(env)
			if err != nil {
				return Result{}, conveyor.Errorf(conveyor.EInvalid, "callback refused: guard: %v", err)
			}
			if ok {
				continue
			}
			if g.message != nil {
				if msg, err := g.message.String(env); err == nil && msg != "" {
					return Result{}, conveyor.Errorf(conveyor.EInvalid, "callback refused: %s", msg)
				}
			}
			return Result{}, conveyor.Errorf(conveyor.EInvalid, "callback refused: guard %s is false", g.when.Src)
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
