package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/schedule"
	"github.com/jobd/jobd/store"
)

// Defaults applied to a job spec when a field is left empty.
const (
	DefaultGroup            = "default"
	DefaultMisfire          = api.MisfireFireOnce
	DefaultMisfireThreshold = 5 * time.Second
	DefaultMaxCatchUp       = 100
	DefaultOverlap          = api.OverlapAllow
	DefaultQueueMax         = 16
	DefaultRoute            = api.RouteRoundRobin
	DefaultInterpreter      = "sh"
)

// FieldError is invalid input; Field names the input field at fault.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

const maxNameLen = 128

var interpreters = []string{"bash", "sh", "python3", "node", "perl", "ruby"}

// validateName checks a job or group name.
func validateName(field, name string) error {
	if name == "" {
		return fieldErr(field, "required")
	}
	if len(name) > maxNameLen {
		return fieldErr(field, "%q: longer than %d characters", name, maxNameLen)
	}
	if !nameRE.MatchString(name) {
		return fieldErr(field, "%q: must match [a-z0-9][a-z0-9_.-]*", name)
	}
	return nil
}

// normalizeSpec validates spec, fills defaults and returns it with its
// compiled schedule. It changes nothing outside its result.
func normalizeSpec(in api.JobSpec) (api.JobSpec, schedule.Schedule, error) {
	spec := in
	spec.Params = maps.Clone(in.Params)
	spec.Labels = maps.Clone(in.Labels)
	spec.Selector = maps.Clone(in.Selector)
	if err := validateName("name", spec.Name); err != nil {
		return spec, nil, err
	}
	if spec.Group == "" {
		spec.Group = DefaultGroup
	}
	if err := validateName("group", spec.Group); err != nil {
		return spec, nil, err
	}
	sched, err := compileSchedule(&spec)
	if err != nil {
		return spec, nil, err
	}
	if err := normalizeKind(&spec); err != nil {
		return spec, nil, err
	}
	if err := normalizePolicies(&spec); err != nil {
		return spec, nil, err
	}
	if err := validateParams(spec.Params); err != nil {
		return spec, nil, err
	}
	return spec, sched, nil
}

// validateParams checks parameter names: they become JOBD_PARAM_* names.
func validateParams(params map[string]string) error {
	for k := range params {
		if k == "" || strings.ContainsAny(k, "= \t\n") {
			return fieldErr("params", "%q: a name must be non-empty without '=' or spaces", k)
		}
	}
	return nil
}

// scheduleSpec converts the schedule fields of a job spec.
func scheduleSpec(spec *api.JobSpec) (schedule.Spec, error) {
	var kinds []string
	var s schedule.Spec
	if spec.Cron != "" {
		kinds = append(kinds, "cron")
		s.Kind, s.Cron = api.ScheduleCron, spec.Cron
	}
	if spec.Every != nil {
		kinds = append(kinds, "every")
		s.Kind, s.Every = api.ScheduleEvery, spec.Every.D()
		if spec.Anchor != nil {
			s.Anchor = spec.Anchor.Time
		}
	}
	if spec.Delay != nil {
		kinds = append(kinds, "delay")
		s.Kind, s.Delay = api.ScheduleDelay, spec.Delay.D()
	}
	if spec.At != nil {
		kinds = append(kinds, "at")
		s.Kind, s.At = api.ScheduleAt, spec.At.Time
	}
	if spec.Manual {
		kinds = append(kinds, "manual")
		s.Kind = api.ScheduleManual
	}
	switch len(kinds) {
	case 0:
		return s, fieldErr("schedule", "one of cron, every, delay, at or manual is required")
	case 1:
	default:
		return s, fieldErr("schedule", "only one of cron, every, delay, at, manual may be set (got %s)", strings.Join(kinds, ", "))
	}
	if spec.Anchor != nil && s.Kind != api.ScheduleEvery {
		return s, fieldErr("anchor", "only applies to every")
	}
	s.TZ = spec.TZ
	return s, nil
}

func compileSchedule(spec *api.JobSpec) (schedule.Schedule, error) {
	s, err := scheduleSpec(spec)
	if err != nil {
		return nil, err
	}
	sched, err := schedule.Parse(s)
	if err != nil {
		var fe *schedule.FieldError
		if errors.As(err, &fe) {
			return nil, &FieldError{Field: fe.Field, Err: err}
		}
		return nil, &FieldError{Field: "schedule", Err: err}
	}
	return sched, nil
}

func normalizeKind(spec *api.JobSpec) error {
	var kinds []string
	if len(spec.Command) > 0 {
		kinds = append(kinds, api.KindCommand)
	}
	if spec.Script != "" {
		kinds = append(kinds, api.KindScript)
	}
	if spec.HTTP != nil {
		kinds = append(kinds, api.KindHTTP)
	}
	if spec.Handler != "" {
		kinds = append(kinds, api.KindHandler)
	}
	switch len(kinds) {
	case 0:
		return fieldErr("kind", "one of command, script, http or handler is required")
	case 1:
	default:
		return fieldErr("kind", "only one of command, script, http, handler may be set (got %s)", strings.Join(kinds, ", "))
	}
	switch kinds[0] {
	case api.KindCommand:
		if spec.Command[0] == "" {
			return fieldErr("command", "the program name is empty")
		}
	case api.KindScript:
		if spec.Interpreter == "" {
			spec.Interpreter = DefaultInterpreter
		}
		if !slices.Contains(interpreters, spec.Interpreter) {
			return fieldErr("interpreter", "%q: want one of %s", spec.Interpreter, strings.Join(interpreters, ", "))
		}
	case api.KindHTTP:
		if spec.HTTP.URL == "" {
			return fieldErr("http.url", "required")
		}
		if !strings.HasPrefix(spec.HTTP.URL, "http://") && !strings.HasPrefix(spec.HTTP.URL, "https://") {
			return fieldErr("http.url", "%q: want an http:// or https:// URL", spec.HTTP.URL)
		}
		if spec.HTTP.Method == "" {
			spec.HTTP.Method = "GET"
		}
		spec.HTTP.Method = strings.ToUpper(spec.HTTP.Method)
	case api.KindHandler:
		if err := validateName("handler", spec.Handler); err != nil {
			return err
		}
	}
	if spec.Interpreter != "" && kinds[0] != api.KindScript {
		return fieldErr("interpreter", "only applies to script")
	}
	return nil
}

func normalizePolicies(spec *api.JobSpec) error {
	if spec.Misfire == "" {
		spec.Misfire = DefaultMisfire
	}
	if !slices.Contains([]string{api.MisfireSkip, api.MisfireFireOnce, api.MisfireCatchUp}, spec.Misfire) {
		return fieldErr("misfire", "%q: want skip, fire_once or catch_up", spec.Misfire)
	}
	if spec.MisfireThreshold == nil {
		d := api.Duration(DefaultMisfireThreshold)
		spec.MisfireThreshold = &d
	}
	if spec.MisfireThreshold.D() < 0 {
		return fieldErr("misfire_threshold", "%s: must not be negative", spec.MisfireThreshold.D())
	}
	if spec.MaxCatchUp < 0 {
		return fieldErr("max_catch_up", "%d: must not be negative", spec.MaxCatchUp)
	}
	if spec.MaxCatchUp == 0 {
		spec.MaxCatchUp = DefaultMaxCatchUp
	}
	if spec.Overlap == "" {
		spec.Overlap = DefaultOverlap
	}
	if !slices.Contains([]string{api.OverlapAllow, api.OverlapQueue, api.OverlapSkip, api.OverlapReplace}, spec.Overlap) {
		return fieldErr("overlap", "%q: want allow, queue, skip or replace", spec.Overlap)
	}
	if spec.QueueMax < 0 {
		return fieldErr("queue_max", "%d: must not be negative", spec.QueueMax)
	}
	if spec.QueueMax == 0 {
		spec.QueueMax = DefaultQueueMax
	}
	if spec.Route == "" {
		spec.Route = DefaultRoute
	}
	if !slices.Contains(api.Routes, spec.Route) {
		return fieldErr("route", "%q: want one of %s", spec.Route, strings.Join(api.Routes, ", "))
	}
	if spec.Retries < 0 {
		return fieldErr("retries", "%d: must not be negative", spec.Retries)
	}
	if spec.Backoff != nil && spec.Backoff.D() < 0 {
		return fieldErr("backoff", "%s: must not be negative", spec.Backoff.D())
	}
	switch spec.BackoffPolicy {
	case "":
		if spec.Retries > 0 {
			spec.BackoffPolicy = api.BackoffExponential
		}
	case api.BackoffFixed, api.BackoffExponential:
	default:
		return fieldErr("backoff_policy", "%q: want fixed or exponential", spec.BackoffPolicy)
	}
	if spec.BackoffMax != nil && spec.BackoffMax.D() < 0 {
		return fieldErr("backoff_max", "%s: must not be negative", spec.BackoffMax.D())
	}
	if spec.Timeout != nil && spec.Timeout.D() < 0 {
		return fieldErr("timeout", "%s: must not be negative", spec.Timeout.D())
	}
	return nil
}

// jobKind names the kind of a normalized spec.
func jobKind(spec *api.JobSpec) string {
	switch {
	case len(spec.Command) > 0:
		return api.KindCommand
	case spec.Script != "":
		return api.KindScript
	case spec.HTTP != nil:
		return api.KindHTTP
	default:
		return api.KindHandler
	}
}

// compiledJob is a stored job with its spec decoded and schedule compiled.
type compiledJob struct {
	row   *store.Job
	spec  api.JobSpec
	sched schedule.Schedule
}

func compileJob(row *store.Job) (*compiledJob, error) {
	var spec api.JobSpec
	if err := json.Unmarshal(row.Spec, &spec); err != nil {
		return nil, fmt.Errorf("decode job %s spec: %w", row.Name, err)
	}
	sched, err := compileSchedule(&spec)
	if err != nil {
		return nil, fmt.Errorf("compile job %s schedule: %w", row.Name, err)
	}
	spec.Paused = row.Paused
	return &compiledJob{row: row, spec: spec, sched: sched}, nil
}

func (j *compiledJob) threshold() time.Duration {
	if j.spec.MisfireThreshold == nil {
		return DefaultMisfireThreshold
	}
	return j.spec.MisfireThreshold.D()
}

// toAPIJob renders a stored job for the API.
func toAPIJob(j *compiledJob, lastState string) api.Job {
	out := api.Job{
		JobSpec:    j.spec,
		ID:         strconv.FormatInt(j.row.ID, 10),
		Schedule:   j.sched.String(),
		Kind:       jobKind(&j.spec),
		NextFireAt: api.NewTime(j.row.NextFireAt),
		LastFireAt: api.NewTime(j.row.LastFireAt),
		LastState:  lastState,
		CreatedAt:  api.NewTime(j.row.CreatedAt),
		UpdatedAt:  api.NewTime(j.row.UpdatedAt),
	}
	out.Paused = j.row.Paused
	if j.row.Paused {
		out.NextFireAt = api.Time{}
	}
	return out
}

// firstFire is where a new or rescheduled job's cursor starts: its first
// scheduled time at or after now.
func firstFire(sched schedule.Schedule, spec *api.JobSpec, now time.Time) time.Time {
	if spec.Delay != nil {
		return now.Add(spec.Delay.D()).Truncate(time.Millisecond)
	}
	t, ok := sched.Next(now.Add(-time.Millisecond))
	if !ok {
		return time.Time{}
	}
	return t
}
