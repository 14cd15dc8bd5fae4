package v1alpha1

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // schedules' time zones are checked on machines without a zoneinfo database

	"knative.dev/pkg/apis"
)

// Validate checks a schedule: its name, expression, time zone and data.
func (s *Schedule) Validate() *apis.FieldError {
	var errs *apis.FieldError
	if p := labelProblem(s.Name); p != "" {
		errs = errs.Also(apis.ErrInvalidValue(s.Name, "name", p))
	}
	if p := CronProblem(s.Cron); p != "" {
		errs = errs.Also(apis.ErrInvalidValue(s.Cron, "cron", p))
	}
	if s.TimeZone != "" {
		if strings.HasPrefix(strings.TrimSpace(s.Cron), "@every") {
			errs = errs.Also(apis.ErrInvalidValue(s.TimeZone, "timeZone", "@every takes no time zone: it counts from when the schedule was made"))
		} else if _, err := time.LoadLocation(s.TimeZone); err != nil || s.TimeZone == "Local" {
			errs = errs.Also(apis.ErrInvalidValue(s.TimeZone, "timeZone", "want an IANA time zone, such as Europe/Paris or UTC"))
		}
	}
	if len(s.Type) > 256 {
		errs = errs.Also(apis.ErrInvalidValue(s.Type, "type", "at most 256 characters"))
	}
	if s.Data != nil && len(s.Data.Raw) > 64<<10 {
		errs = errs.Also(apis.ErrInvalidValue(fmt.Sprintf("%d bytes", len(s.Data.Raw)), "data", "at most 64 KiB"))
	}
	return errs
}

func labelProblem(s string) string {
	if s == "" {
		return "want a name"
	}
	if len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return "want lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return "want lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"
		}
	}
	return ""
}

// EngineCron is a schedule's expression as the event engine takes it: six fields, seconds
// first (a five-field expression fires at second 0), or one of its @ forms.
func EngineCron(expr string) string {
	expr = strings.Join(strings.Fields(expr), " ")
	if strings.HasPrefix(expr, "@") {
		return expr
	}
	if len(strings.Fields(expr)) == 5 {
		return "0 " + expr
	}
	return expr
}

// cronField is the range and names of one field of a cron expression.
type cronField struct {
	what     string
	min, max int
	names    []string // names[i] stands for min+i
}

var cronFields = []cronField{
	{what: "second", max: 59},
	{what: "minute", max: 59},
	{what: "hour", max: 23},
	{what: "day of month", min: 1, max: 31},
	{what: "month", min: 1, max: 12, names: []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	{what: "day of week", max: 6, names: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

// CronProblem says what is wrong with a schedule's expression, or "" when the event engine
// takes it.
func CronProblem(expr string) string {
	e := EngineCron(expr)
	switch {
	case e == "":
		return "want a cron expression, such as \"*/5 * * * *\" (every five minutes) or \"@every 10s\""
	case strings.HasPrefix(e, "@every "):
		d, err := time.ParseDuration(strings.TrimSpace(e[len("@every "):]))
		if err != nil || d < time.Second {
			return "@every takes a duration of 1s or more, such as @every 30s"
		}
		return ""
	case strings.HasPrefix(e, "@"):
		switch e {
		case "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly":
			return ""
		}
		return "want @every DURATION, @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually"
	}
	fields := strings.Fields(e)
	if len(fields) != 6 {
		return fmt.Sprintf("%d fields; want 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)", len(strings.Fields(expr)))
	}
	for i, f := range fields {
		if p := cronFields[i].problem(f); p != "" {
			return fmt.Sprintf("%s %q: %s", cronFields[i].what, f, p)
		}
	}
	return ""
}

// problem checks one field: comma-separated ranges, each *, ?, N or N-M, with an optional
// /STEP.
func (cf cronField) problem(field string) string {
	for _, part := range strings.Split(field, ",") {
		rng, step, stepped := strings.Cut(part, "/")
		if stepped {
			n, err := strconv.Atoi(step)
			if err != nil || n < 1 || n > cf.max-cf.min+1 {
				return fmt.Sprintf("the step %q is not a number from 1 to %d", step, cf.max-cf.min+1)
			}
		}
		if rng == "*" || rng == "?" {
			continue
		}
		lo, hi, isRange := strings.Cut(rng, "-")
		a, ok := cf.value(lo)
		if !ok {
			return cf.want(lo)
		}
		if isRange {
			b, ok := cf.value(hi)
			if !ok {
				return cf.want(hi)
			}
			if b < a {
				return fmt.Sprintf("the range %s ends before it starts", rng)
			}
		}
	}
	return ""
}

func (cf cronField) value(s string) (int, bool) {
	for i, n := range cf.names {
		if strings.EqualFold(s, n) {
			return cf.min + i, true
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= cf.min && n <= cf.max
}

func (cf cronField) want(s string) string {
	w := fmt.Sprintf("%q is not a %s from %d to %d", s, cf.what, cf.min, cf.max)
	if len(cf.names) > 0 {
		w += " or a name (" + cf.names[0] + ", " + cf.names[1] + "...)"
	}
	return w
}
