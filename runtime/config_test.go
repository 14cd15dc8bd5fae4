package runtime_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"fnkit.dev/fn/runtime"
)

func TestConfigFromLookup(t *testing.T) {
	defaults := runtime.Config{
		Port:         8080,
		MaxBody:      runtime.DefaultMaxBody,
		LogLevel:     slog.LevelInfo,
		DrainTimeout: 30 * time.Second,
	}
	with := func(edit func(*runtime.Config)) runtime.Config {
		c := defaults
		edit(&c)
		return c
	}
	tests := []struct {
		name string
		env  map[string]string
		want runtime.Config
	}{
		{"empty environment", nil, defaults},
		{"empty values are unset", map[string]string{"PORT": "", "FN_TIMEOUT": " ", "FN_MAX_BODY": ""}, defaults},
		{"unrelated variables", map[string]string{"HOME": "/root", "FN_OTHER": "x"}, defaults},
		{"PORT", map[string]string{"PORT": "9090"}, with(func(c *runtime.Config) { c.Port = 9090 })},
		{"FN_ADDRESS", map[string]string{"FN_ADDRESS": "127.0.0.1"}, with(func(c *runtime.Config) { c.Address = "127.0.0.1" })},
		{"FN_ADDRESS IPv6", map[string]string{"FN_ADDRESS": "::1"}, with(func(c *runtime.Config) { c.Address = "::1" })},
		{"PORT with spaces", map[string]string{"PORT": " 9090\n"}, with(func(c *runtime.Config) { c.Port = 9090 })},
		{"PORT 0", map[string]string{"PORT": "0"}, with(func(c *runtime.Config) { c.Port = 0 })},
		{"PORT 65535", map[string]string{"PORT": "65535"}, with(func(c *runtime.Config) { c.Port = 65535 })},
		{"FN_TIMEOUT duration", map[string]string{"FN_TIMEOUT": "30s"}, with(func(c *runtime.Config) {
			c.Timeout, c.DrainTimeout = 30*time.Second, 35*time.Second
		})},
		{"FN_TIMEOUT seconds", map[string]string{"FN_TIMEOUT": "30"}, with(func(c *runtime.Config) {
			c.Timeout, c.DrainTimeout = 30*time.Second, 35*time.Second
		})},
		{"FN_TIMEOUT fractional seconds", map[string]string{"FN_TIMEOUT": "1.5"}, with(func(c *runtime.Config) {
			c.Timeout, c.DrainTimeout = 1500*time.Millisecond, 6500*time.Millisecond
		})},
		{"FN_TIMEOUT compound duration", map[string]string{"FN_TIMEOUT": "1m30s"}, with(func(c *runtime.Config) {
			c.Timeout, c.DrainTimeout = 90*time.Second, 95*time.Second
		})},
		{"FN_TIMEOUT 0 means none", map[string]string{"FN_TIMEOUT": "0"}, defaults},
		{"FN_CONCURRENCY", map[string]string{"FN_CONCURRENCY": "1"}, with(func(c *runtime.Config) { c.Concurrency = 1 })},
		{"FN_CONCURRENCY 0 means unlimited", map[string]string{"FN_CONCURRENCY": "0"}, defaults},
		{"FN_MAX_BODY Mi", map[string]string{"FN_MAX_BODY": "1Mi"}, with(func(c *runtime.Config) { c.MaxBody = 1 << 20 })},
		{"FN_MAX_BODY Ki", map[string]string{"FN_MAX_BODY": "64Ki"}, with(func(c *runtime.Config) { c.MaxBody = 64 << 10 })},
		{"FN_MAX_BODY Gi", map[string]string{"FN_MAX_BODY": "2Gi"}, with(func(c *runtime.Config) { c.MaxBody = 2 << 30 })},
		{"FN_MAX_BODY bytes", map[string]string{"FN_MAX_BODY": "16"}, with(func(c *runtime.Config) { c.MaxBody = 16 })},
		{"FN_MAX_BODY 0 means unlimited", map[string]string{"FN_MAX_BODY": "0"}, with(func(c *runtime.Config) { c.MaxBody = 0 })},
		{"FN_LOG_LEVEL debug", map[string]string{"FN_LOG_LEVEL": "debug"}, with(func(c *runtime.Config) { c.LogLevel = slog.LevelDebug })},
		{"FN_LOG_LEVEL upper case", map[string]string{"FN_LOG_LEVEL": "WARN"}, with(func(c *runtime.Config) { c.LogLevel = slog.LevelWarn })},
		{"FN_LOG_LEVEL error", map[string]string{"FN_LOG_LEVEL": "error"}, with(func(c *runtime.Config) { c.LogLevel = slog.LevelError })},
		{"FN_SHUTDOWN_DELAY", map[string]string{"FN_SHUTDOWN_DELAY": "5s"}, with(func(c *runtime.Config) { c.ShutdownDelay = 5 * time.Second })},
		{"FN_DRAIN_TIMEOUT wins over the default", map[string]string{"FN_TIMEOUT": "30s", "FN_DRAIN_TIMEOUT": "10"}, with(func(c *runtime.Config) {
			c.Timeout, c.DrainTimeout = 30*time.Second, 10*time.Second
		})},
		{"everything", map[string]string{
			"PORT": "3000", "FN_TIMEOUT": "2s", "FN_CONCURRENCY": "8", "FN_MAX_BODY": "1Ki",
			"FN_SHUTDOWN_DELAY": "1", "FN_DRAIN_TIMEOUT": "20s", "FN_LOG_LEVEL": "debug",
		}, runtime.Config{
			Port: 3000, Timeout: 2 * time.Second, Concurrency: 8, MaxBody: 1024,
			ShutdownDelay: time.Second, DrainTimeout: 20 * time.Second, LogLevel: slog.LevelDebug,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runtime.ConfigFromLookup(lookupIn(tt.env))
			if err != nil {
				t.Fatalf("ConfigFromLookup(%v) = %v", tt.env, err)
			}
			if diff := diff(tt.want, got); diff != "" {
				t.Errorf("ConfigFromLookup(%v) mismatch (-want +got):\n%s", tt.env, diff)
			}
		})
	}
}

func TestConfigFromLookupErrors(t *testing.T) {
	tests := []struct{ name, value string }{
		{"PORT", "http"},
		{"PORT", "-1"},
		{"PORT", "65536"},
		{"PORT", "80.5"},
		{"FN_TIMEOUT", "soon"},
		{"FN_TIMEOUT", "-1"},
		{"FN_TIMEOUT", "-1s"},
		{"FN_TIMEOUT", "10 s"},
		{"FN_TIMEOUT", "NaN"},
		{"FN_TIMEOUT", "Inf"},
		{"FN_TIMEOUT", "1e300"},
		{"FN_CONCURRENCY", "many"},
		{"FN_CONCURRENCY", "-2"},
		{"FN_CONCURRENCY", "1.5"},
		{"FN_MAX_BODY", "1MB"},
		{"FN_MAX_BODY", "-1"},
		{"FN_MAX_BODY", "Mi"},
		{"FN_MAX_BODY", "1.5Mi"},
		{"FN_MAX_BODY", "9223372036854775807Gi"},
		{"FN_MAX_BODY", "99999999999999999999"},
		{"FN_SHUTDOWN_DELAY", "later"},
		{"FN_DRAIN_TIMEOUT", "-3s"},
		{"FN_LOG_LEVEL", "loud"},
		{"FN_ADDRESS", "localhost:80"},
		{"FN_ADDRESS", "example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			// A valid variable beside the bad one must not hide the error.
			env := map[string]string{tt.name: tt.value, "FN_CONCURRENCY": "4"}
			if tt.name == "FN_CONCURRENCY" {
				env["PORT"] = "9000"
			}
			got, err := runtime.ConfigFromLookup(lookupIn(env))
			if err == nil {
				t.Fatalf("ConfigFromLookup(%s=%q) = %+v, want an error", tt.name, tt.value, got)
			}
			if !strings.Contains(err.Error(), tt.name) {
				t.Errorf("error %q does not name the variable %s", err, tt.name)
			}
			if diff := diff(runtime.Config{}, got); diff != "" {
				t.Errorf("ConfigFromLookup returned a config with its error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("PORT", "7070")
	t.Setenv("FN_MAX_BODY", "2Ki")
	got, err := runtime.ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if got.Port != 7070 || got.MaxBody != 2048 {
		t.Errorf("ConfigFromEnv() = %+v, want Port 7070 and MaxBody 2048", got)
	}
	t.Setenv("FN_CONCURRENCY", "lots")
	if _, err := runtime.ConfigFromEnv(); err == nil || !strings.Contains(err.Error(), "FN_CONCURRENCY") {
		t.Errorf("ConfigFromEnv() with FN_CONCURRENCY=lots: error %v, want one naming FN_CONCURRENCY", err)
	}
}

func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

// FuzzConfig parses any values of every FN_* variable and PORT: an error names the variable,
// or the configuration holds what a server can use (a port in range, limits >= 0).
func FuzzConfig(f *testing.F) {
	f.Add("8080", "30s", "10", "1Mi", "info", "127.0.0.1", "5s", "1s")
	f.Add("-1", "banana", "-3", "1e99", "loud", "::1", "0", "-1s")
	f.Add("65536", "1.5h", "0", "0", "DEBUG", "localhost", "1000000h", "9223372036854775807ns")
	// One bad value at a time: the error must come from it.
	f.Add("65536", "", "", "", "", "", "", "")
	f.Add("", "", "-1", "", "", "", "", "")
	f.Add("", "-5s", "", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, port, timeout, concurrency, maxBody, level, address, shutdown, drain string) {
		env := map[string]string{"PORT": port, "FN_TIMEOUT": timeout, "FN_CONCURRENCY": concurrency, "FN_MAX_BODY": maxBody,
			"FN_LOG_LEVEL": level, "FN_ADDRESS": address, "FN_SHUTDOWN_DELAY": shutdown, "FN_DRAIN_TIMEOUT": drain}
		c, err := runtime.ConfigFromLookup(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if err != nil {
			named := false
			for k := range env {
				named = named || strings.Contains(err.Error(), "environment variable "+k+"=")
			}
			if !named {
				t.Fatalf("an error naming no variable: %v", err)
			}
			return
		}
		if c.Port < 0 || c.Port > 65535 || c.Concurrency < 0 || c.MaxBody < 0 || c.Timeout < 0 || c.ShutdownDelay < 0 || c.DrainTimeout < 0 {
			t.Fatalf("a configuration no server can use: %+v", c)
		}
	})
}
