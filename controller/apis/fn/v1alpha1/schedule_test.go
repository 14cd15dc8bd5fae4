package v1alpha1

import (
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

func TestCronProblem(t *testing.T) {
	for _, c := range []struct {
		expr, problem string // "" for none
	}{
		{"* * * * * *", ""},
		{"*/5 * * * *", ""},
		{"0 9 * * mon-fri", ""},
		{"0 0 9 1,15 JAN-jun ?", ""},
		{"30 2-4/1 * * 0", ""},
		{"  0   9 * * *  ", ""},
		{"@every 10s", ""},
		{"@every 1s", ""},
		{"@hourly", ""},
		{"@annually", ""},
		{"", "want a cron expression"},
		{"@every 500ms", "1s or more"},
		{"@every soon", "1s or more"},
		{"@fortnightly", "want @every DURATION"},
		{"* * * *", "4 fields; want 5"},
		{"* * * * * * *", "7 fields"},
		{"60 * * * *", `minute "60": "60" is not a minute from 0 to 59`},
		{"* 24 * * *", `hour "24"`},
		{"* * 0 * *", `day of month "0": "0" is not a day of month from 1 to 31`},
		{"* * * 13 *", `month "13"`},
		{"* * * * 7", `day of week "7"`},
		{"* * * foo *", `"foo" is not a month from 1 to 12 or a name (jan, feb...)`},
		{"*/0 * * * *", `the step "0" is not a number from 1 to 60`},
		{"*/x * * * *", `the step "x"`},
		{"5-1 * * * *", "the range 5-1 ends before it starts"},
		{"1-x * * * *", `"x" is not a minute`},
		{"1,,2 * * * *", `"" is not a minute`},
	} {
		got := CronProblem(c.expr)
		if (c.problem == "") != (got == "") || !strings.Contains(got, c.problem) {
			t.Errorf("CronProblem(%q) = %q, want %q", c.expr, got, c.problem)
		}
	}
	if got := EngineCron(" */5  * * * * "); got != "0 */5 * * * *" {
		t.Errorf("EngineCron: %q", got)
	}
}

func TestScheduleValidate(t *testing.T) {
	ok := Schedule{Name: "nightly", Cron: "0 3 * * *", TimeZone: "Europe/Paris", Data: &apiextensionsv1.JSON{Raw: []byte(`{"a":1}`)}}
	if err := ok.Validate(); err != nil {
		t.Errorf("%+v: %v", ok, err)
	}
	for _, c := range []struct {
		s    Schedule
		want string
	}{
		{Schedule{Name: "Bad", Cron: "@hourly"}, "name"},
		{Schedule{Name: "a", Cron: "@every 5s", TimeZone: "UTC"}, "@every takes no time zone"},
		{Schedule{Name: "a", Cron: "@daily", TimeZone: "Mars/Olympus"}, "want an IANA time zone"},
		{Schedule{Name: "a", Cron: "@daily", TimeZone: "Local"}, "want an IANA time zone"},
		{Schedule{Name: "a", Cron: "61 * * * *"}, "cron"},
	} {
		err := c.s.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error about %s", c.s, err, c.want)
		}
	}
	spec := FunctionSpec{Image: "r.example/a@sha256:" + strings.Repeat("0", 64), Schedules: []Schedule{{Name: "a", Cron: "@hourly"}, {Name: "a", Cron: "@daily"}}}
	if err := spec.Validate(t.Context()); err == nil || !strings.Contains(err.Error(), "another schedule has this name") || !strings.Contains(err.Error(), "schedules[1].name") {
		t.Errorf("two schedules of one name: %v", err)
	}
}
