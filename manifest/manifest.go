// Package manifest reads, checks and edits fn.yaml, the file in a function's directory that holds
// the function's configuration: its name and namespace and the part of the Function spec a user
// sets. `fn deploy` makes a Function's spec exactly the file plus that deploy's flags; the image
// is built, never written to the file.
package manifest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/apis"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
)

// File is the manifest's name in a function's directory.
const File = "fn.yaml"

// Manifest is fn.yaml. Every field is optional; what is absent takes the cluster's defaults.
type Manifest struct {
	// Name is the Function's name (default: the directory's name).
	Name string `json:"name,omitempty"`
	// Namespace is the Function's namespace (default: the kubeconfig context's).
	Namespace string `json:"namespace,omitempty"`
	// Env are the function's environment variables: values, or valueFrom a Secret or ConfigMap key.
	Env []corev1.EnvVar `json:"env,omitempty"`
	// EnvFrom takes every key of Secrets or ConfigMaps as variables.
	EnvFrom []corev1.EnvFromSource `json:"envFrom,omitempty"`
	// Resources are the function container's requests and limits.
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
	// Timeout is each request's deadline.
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Concurrency is the most requests a replica serves at once (0: unlimited).
	Concurrency *int32 `json:"concurrency,omitempty"`
	// Scale bounds and steers the autoscaler.
	Scale *v1alpha1.Scale `json:"scale,omitempty"`
	// Source is where git-push builds take the function's code from.
	Source *v1alpha1.Source `json:"source,omitempty"`
	// Access is who may invoke the function: public (default) or private (a token of the
	// namespace's Secret fn-access).
	Access v1alpha1.Access `json:"access,omitempty"`
	// RateLimit bounds the requests per second the gateway lets through.
	RateLimit *v1alpha1.RateLimit `json:"rateLimit,omitempty"`
	// Delivery is how asynchronous calls are delivered: attempts, backoff, maximum age, dead
	// letters.
	Delivery *v1alpha1.Delivery `json:"delivery,omitempty"`
	// Schedules deliver a CloudEvent at each tick of a cron expression.
	Schedules []v1alpha1.Schedule `json:"schedules,omitempty"`
	// Rollout is how a new revision replaces the running one: rolling (default), canary or
	// batched.
	Rollout *v1alpha1.Rollout `json:"rollout,omitempty"`
	// RevisionHistory is how many revisions are kept for fn rollback (default 5).
	RevisionHistory *int32 `json:"revisionHistory,omitempty"`
}

// Error is what is wrong with a manifest: the file, the key path and what is accepted.
type Error struct {
	File string // the file's path as given
	Key  string // the key path, such as scale.min or env[1].name; empty for the whole file
	Msg  string
}

func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.File, e.Key, e.Msg)
}

// Errors are every problem found in one manifest.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Load reads dir's fn.yaml; a directory without one has the empty manifest (and ok false).
func Load(dir string) (m *Manifest, path string, ok bool, err error) {
	path = filepath.Join(dir, File)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Manifest{}, path, false, nil
	}
	if err != nil {
		return nil, path, false, err
	}
	m, err = Parse(path, data)
	return m, path, err == nil, err
}

// Parse decodes and checks a manifest; file names it in errors. Unknown keys, values of the
// wrong type and invalid values are all reported, each with its key path.
func Parse(file string, data []byte) (*Manifest, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
		msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n")
		return nil, &Error{File: file, Msg: strings.Join(strings.Fields(msg), " ")}
	}
	m := &Manifest{}
	if len(bytes.TrimSpace(js)) == 0 || string(bytes.TrimSpace(js)) == "null" {
		return m, nil
	}
	var top any
	if err := json.Unmarshal(js, &top); err != nil {
		return nil, &Error{File: file, Msg: err.Error()}
	}
	if _, isMap := top.(map[string]any); !isMap {
		return nil, &Error{File: file, Msg: "want a mapping of keys such as name, env, scale (see manifest/fn.schema.json)"}
	}
	strict, err := kjson.UnmarshalStrict(js, m, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	var errs Errors
	if err != nil {
		e := decodeError(file, err)
		if e.Key == "" {
			e.Key = locate(js)
		}
		errs = append(errs, e)
	}
	for _, se := range strict {
		errs = append(errs, strictError(file, se))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if errs := m.check(file); len(errs) > 0 {
		return nil, errs
	}
	return m, nil
}

// check validates the values as the API server will, with fn.yaml's key paths.
func (m *Manifest) check(file string) Errors {
	var errs Errors
	if m.Name != "" {
		if msg := nameProblem(m.Name); msg != "" {
			errs = append(errs, &Error{File: file, Key: "name", Msg: msg})
		}
	}
	if m.Namespace != "" {
		if msg := nameProblem(m.Namespace); msg != "" {
			errs = append(errs, &Error{File: file, Key: "namespace", Msg: msg})
		}
	}
	spec := m.Spec(placeholderImage)
	if fe := spec.Validate(context.Background()); fe != nil {
		for _, e := range fe.WrappedErrors() {
			errs = append(errs, fieldError(file, e)...)
		}
	}
	return errs
}

// placeholderImage stands for the image, which is built, while the rest of a spec is checked.
const placeholderImage = "fn.invalid/placeholder@sha256:0000000000000000000000000000000000000000000000000000000000000000"

var dns1123 = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func nameProblem(s string) string {
	if len(s) > 63 || !dns1123.MatchString(s) {
		return fmt.Sprintf("invalid value %q: want lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters", s)
	}
	return ""
}

// Spec is the Function spec the manifest describes, running image.
func (m *Manifest) Spec(image string) v1alpha1.FunctionSpec {
	m = m.DeepCopy()
	s := v1alpha1.FunctionSpec{
		Image:       image,
		Source:      m.Source,
		Env:         m.Env,
		EnvFrom:     m.EnvFrom,
		Timeout:     m.Timeout,
		Concurrency: m.Concurrency,
		Scale:       m.Scale,
		Access:      m.Access,
		RateLimit:   m.RateLimit,
		Delivery:    m.Delivery,
		Schedules:   m.Schedules,
		Rollout:     m.Rollout,

		RevisionHistory: m.RevisionHistory,
	}
	if m.Resources != nil {
		s.Resources = *m.Resources
	}
	return s
}

// DeepCopy copies the manifest.
func (m *Manifest) DeepCopy() *Manifest {
	if m == nil {
		return nil
	}
	out := *m
	if m.Env != nil {
		out.Env = make([]corev1.EnvVar, len(m.Env))
		for i := range m.Env {
			m.Env[i].DeepCopyInto(&out.Env[i])
		}
	}
	if m.EnvFrom != nil {
		out.EnvFrom = make([]corev1.EnvFromSource, len(m.EnvFrom))
		for i := range m.EnvFrom {
			m.EnvFrom[i].DeepCopyInto(&out.EnvFrom[i])
		}
	}
	out.Resources = m.Resources.DeepCopy()
	if m.Timeout != nil {
		t := *m.Timeout
		out.Timeout = &t
	}
	if m.Concurrency != nil {
		c := *m.Concurrency
		out.Concurrency = &c
	}
	out.Scale = m.Scale.DeepCopy()
	out.Source = m.Source.DeepCopy()
	out.RateLimit = m.RateLimit.DeepCopy()
	out.Delivery = m.Delivery.DeepCopy()
	out.Rollout = m.Rollout.DeepCopy()
	if m.RevisionHistory != nil {
		h := *m.RevisionHistory
		out.RevisionHistory = &h
	}
	if m.Schedules != nil {
		out.Schedules = make([]v1alpha1.Schedule, len(m.Schedules))
		for i := range m.Schedules {
			m.Schedules[i].DeepCopyInto(&out.Schedules[i])
		}
	}
	return &out
}

// fieldError turns the API's validation error (paths such as scale.min) into fn.yaml's.
func fieldError(file string, fe *apis.FieldError) []*Error {
	msg := fe.Message
	if fe.Details != "" {
		msg += ": " + fe.Details
	}
	if len(fe.Paths) == 0 {
		return []*Error{{File: file, Msg: msg}}
	}
	out := make([]*Error, len(fe.Paths))
	for i, p := range fe.Paths {
		out[i] = &Error{File: file, Key: p, Msg: msg}
	}
	return out
}

var typeErrorRE = regexp.MustCompile(`cannot unmarshal (\w+) into Go (?:struct field \w+\.(\S+)|value) of type (\S+)`)

// decodeError explains a value of the wrong type.
func decodeError(file string, err error) *Error {
	msg := err.Error()
	if m := typeErrorRE.FindStringSubmatch(msg); m != nil {
		return &Error{File: file, Key: m[2], Msg: fmt.Sprintf("want %s, not %s", kindOf(m[3]), article(m[1]))}
	}
	return &Error{File: file, Msg: strings.TrimPrefix(msg, "json: ")}
}

func kindOf(goType string) string {
	switch strings.TrimLeft(goType, "*[]") {
	case "int32", "int64", "int":
		return "an integer"
	case "string", "v1alpha1.ScaleMetric":
		return "a string"
	case "bool":
		return "true or false"
	}
	if strings.HasPrefix(goType, "[]") {
		return "a list"
	}
	return "a mapping"
}

func article(jsonKind string) string {
	switch jsonKind {
	case "array":
		return "a list"
	case "object":
		return "a mapping"
	case "number":
		return "a number"
	}
	return "a " + jsonKind
}

// locate finds the key whose value fails to decode, for errors that do not say (a duration or
// a quantity that does not parse): it decodes each key, then each key under it, alone.
func locate(js []byte) string {
	fails := func(doc any) bool {
		b, _ := json.Marshal(doc)
		_, err := kjson.UnmarshalStrict(b, &Manifest{})
		return err != nil
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(js, &top) != nil {
		return ""
	}
	for k, v := range top {
		if !fails(map[string]json.RawMessage{k: v}) {
			continue
		}
		var sub map[string]json.RawMessage
		if json.Unmarshal(v, &sub) == nil {
			for k2, v2 := range sub {
				if fails(map[string]any{k: map[string]json.RawMessage{k2: v2}}) {
					return k + "." + k2
				}
			}
		}
		return k
	}
	return ""
}

var unknownRE = regexp.MustCompile(`^unknown field "(.*)"$`)
var duplicateRE = regexp.MustCompile(`^duplicate field "(.*)"$`)

// strictError explains an unknown or repeated key, listing the keys accepted where it is.
func strictError(file string, err error) *Error {
	msg := err.Error()
	if m := duplicateRE.FindStringSubmatch(msg); m != nil {
		return &Error{File: file, Key: m[1], Msg: "given twice"}
	}
	m := unknownRE.FindStringSubmatch(msg)
	if m == nil {
		return &Error{File: file, Msg: msg}
	}
	key := m[1]
	parent := ""
	if i := strings.LastIndex(key, "."); i >= 0 {
		parent = key[:i]
	}
	keys := KeysAt(parent)
	if len(keys) == 0 {
		return &Error{File: file, Key: key, Msg: "unknown key"}
	}
	return &Error{File: file, Key: key, Msg: "unknown key; accepted here: " + strings.Join(keys, ", ")}
}

var indexRE = regexp.MustCompile(`\[\d*\]`)

// KeysAt lists the keys a mapping at path (such as scale, or env[0].valueFrom) accepts; the
// empty path is the top level.
func KeysAt(path string) []string {
	t := reflect.TypeOf(Manifest{})
	if path != "" {
		for _, seg := range strings.Split(indexRE.ReplaceAllString(path, ""), ".") {
			f, ok := fieldByKey(t, seg)
			if !ok {
				return nil
			}
			t = elem(f.Type)
		}
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	keys := structKeys(t)
	slices.Sort(keys)
	return keys
}

// structKeys are the JSON keys of struct type t, with those of its inlined structs.
func structKeys(t reflect.Type) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if inlined(f) {
			keys = append(keys, structKeys(elem(f.Type))...)
			continue
		}
		if k := jsonKey(f); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

func elem(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	return t
}

// inlined reports whether encoding/json takes f's fields as its parent's (an embedded struct
// without a name of its own).
func inlined(f reflect.StructField) bool {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return f.Anonymous && name == "" && elem(f.Type).Kind() == reflect.Struct
}

func jsonKey(f reflect.StructField) string {
	tag := f.Tag.Get("json")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	if name == "" {
		return f.Name
	}
	return name
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	t = elem(t)
	if t.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if inlined(f) {
			if inner, ok := fieldByKey(f.Type, key); ok {
				return inner, true
			}
			continue
		}
		if jsonKey(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// Starter is the fn.yaml fn init writes for function name: the name, and the keys most often
// set, commented out with their defaults.
func Starter(name string) []byte {
	return []byte(`# The configuration of function ` + name + `. fn deploy makes the Function's spec exactly this
# file plus the deploy's flags; fn config edits it. Every key: manifest/fn.schema.json in fn.
name: ` + name + `
# env:
#   - name: GREETING
#     value: hello
#   - name: API_TOKEN
#     valueFrom:
#       secretKeyRef: {name: api, key: token}
# timeout: 30s        # each request's deadline
# concurrency: 0      # most requests a replica serves at once (0: unlimited)
# scale:
#   min: 0            # 0 scales to zero when idle
#   max: 10
#   target: 10        # in-flight requests per replica the autoscaler aims at
#   metric: concurrency
# access: public      # private: only requests with a token (fn token prints one)
# rateLimit:          # requests per second the gateway lets through; over it, 429
#   rps: 100
#   burst: 200
# delivery:           # asynchronous calls (fn invoke --async): tried again on 5xx, 408, 429
#   attempts: 5
#   backoff: 1s       # doubling up to maxBackoff
#   maxBackoff: 5m
#   maxAge: 24h
#   deadLetters: true # keep the calls given up (fn calls --dead)
# schedules:          # a CloudEvent (type dev.fnkit.schedule) at each tick, delivered as above
#   - name: nightly
#     cron: "0 3 * * *" # or six fields with seconds first, or "@every 30s"
#     timeZone: Europe/Paris
#     data: {report: daily}
# rollout:            # how a new revision replaces the running one (default: rolling, at once)
#   strategy: canary  # canary: a share of traffic per step, judged against the running one
#   steps: [5, 25, 50] # percent; after the last, 100
#   pause: 1m         # each step at least this long
#   analysis: {maxErrorIncrease: 1, maxLatencyPercent: 150, minRequests: 20}
#   # strategy: batched, batchSize: 1 (or 25%): replicas replaced a batch at a time,
#   # each batch waiting for fn rollout resume (or pause, when given)
# revisionHistory: 5  # revisions kept for fn rollback
`)
}
