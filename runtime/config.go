package runtime

import (
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the runtime's configuration, read once from the environment at start.
type Config struct {
	// Port is the TCP port to listen on (PORT, default 8080).
	Port int
	// Address is the IP address to listen on (FN_ADDRESS, default: every address, as a pod
	// wants; fn run sets 127.0.0.1).
	Address string
	// Timeout is the per-request deadline; a request still running at its deadline is answered
	// 504 (FN_TIMEOUT, a Go duration or a number of seconds; 0 means no deadline).
	Timeout time.Duration
	// Concurrency is the maximum number of requests served at once; excess requests are answered
	// 503 with Retry-After (FN_CONCURRENCY, 0 means unlimited).
	Concurrency int
	// MaxBody is the largest request body accepted, in bytes; larger bodies are answered 413
	// (FN_MAX_BODY, bytes with an optional Ki/Mi/Gi suffix; default 32Mi; 0 means unlimited).
	MaxBody int64
	// ShutdownDelay is how long the runtime keeps serving, while reporting not ready, after
	// SIGTERM and before it stops accepting connections, so that load balancers can take it out of
	// rotation (FN_SHUTDOWN_DELAY, default 0).
	ShutdownDelay time.Duration
	// DrainTimeout bounds how long in-flight requests may take to finish after SIGTERM
	// (FN_DRAIN_TIMEOUT, default: Timeout plus 5 s when a timeout is set, else 30 s).
	DrainTimeout time.Duration
	// LogLevel is the minimum level logged: debug logs one line per request (FN_LOG_LEVEL,
	// debug|info|warn|error, default info).
	LogLevel slog.Level
}

// DefaultMaxBody is the default limit on request bodies.
const DefaultMaxBody = 32 << 20

// ConfigFromEnv reads the configuration from the process environment.
func ConfigFromEnv() (Config, error) {
	return ConfigFromLookup(os.LookupEnv)
}

// ConfigFromLookup reads the configuration through lookup, which answers like os.LookupEnv.
func ConfigFromLookup(lookup func(string) (string, bool)) (Config, error) {
	c := Config{Port: 8080, MaxBody: DefaultMaxBody, LogLevel: slog.LevelInfo}
	var err error
	get := func(name string, parse func(string) error) {
		v, ok := lookup(name)
		if !ok || err != nil {
			return
		}
		v = strings.TrimSpace(v)
		if v == "" {
			return
		}
		if perr := parse(v); perr != nil {
			err = fmt.Errorf("environment variable %s=%q: %w", name, v, perr)
		}
	}
	get("PORT", func(v string) error {
		p, err := strconv.Atoi(v)
		if err != nil || p < 0 || p > 65535 {
			return fmt.Errorf("want a TCP port number between 0 and 65535")
		}
		c.Port = p
		return nil
	})
	get("FN_ADDRESS", func(v string) error {
		if net.ParseIP(v) == nil {
			return fmt.Errorf("want an IP address, such as 127.0.0.1")
		}
		c.Address = v
		return nil
	})
	get("FN_TIMEOUT", func(v string) (err error) { c.Timeout, err = parseDuration(v); return })
	get("FN_CONCURRENCY", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("want a whole number >= 0 (0 means unlimited)")
		}
		c.Concurrency = n
		return nil
	})
	get("FN_MAX_BODY", func(v string) (err error) { c.MaxBody, err = parseBytes(v); return })
	get("FN_SHUTDOWN_DELAY", func(v string) (err error) { c.ShutdownDelay, err = parseDuration(v); return })
	get("FN_DRAIN_TIMEOUT", func(v string) (err error) { c.DrainTimeout, err = parseDuration(v); return })
	get("FN_LOG_LEVEL", func(v string) error {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return fmt.Errorf("want debug, info, warn or error")
		}
		return nil
	})
	if err != nil {
		return Config{}, err
	}
	c.DrainTimeout = c.drainTimeout()
	return c, nil
}

// drainTimeout returns DrainTimeout, or its default when it is not set.
func (c Config) drainTimeout() time.Duration {
	switch {
	case c.DrainTimeout > 0:
		return c.DrainTimeout
	case c.Timeout > 0:
		return c.Timeout + 5*time.Second
	}
	return 30 * time.Second
}

// parseDuration accepts a Go duration ("30s", "1m30s") or a plain number of seconds ("30").
func parseDuration(v string) (time.Duration, error) {
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if !(secs >= 0) { // also rejects NaN
			return 0, fmt.Errorf("want a duration >= 0")
		}
		if secs >= float64(math.MaxInt64)/float64(time.Second) { // also rejects +Inf
			return 0, fmt.Errorf("want a duration of at most %v", time.Duration(math.MaxInt64))
		}
		return time.Duration(secs * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("want a duration such as 30s or 1m")
	}
	if d < 0 {
		return 0, fmt.Errorf("want a duration >= 0")
	}
	return d, nil
}

// parseBytes accepts a number of bytes with an optional Ki, Mi or Gi suffix.
func parseBytes(v string) (int64, error) {
	mult := int64(1)
	for suffix, m := range map[string]int64{"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30} {
		if strings.HasSuffix(v, suffix) {
			v, mult = strings.TrimSuffix(v, suffix), m
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("want a size in bytes such as 1048576 or 1Mi")
	}
	return n * mult, nil
}
