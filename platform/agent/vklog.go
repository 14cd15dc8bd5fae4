package agent

import (
	"context"
	"fmt"
	"log/slog"

	vklog "github.com/virtual-kubelet/virtual-kubelet/log"
)

// vkLogger adapts a slog.Logger to virtual-kubelet's logger.
type vkLogger struct{ l *slog.Logger }

var _ vklog.Logger = vkLogger{}

func (v vkLogger) log(level slog.Level, args ...any) {
	v.l.Log(context.Background(), level, fmt.Sprint(args...))
}

func (v vkLogger) logf(level slog.Level, format string, args ...any) {
	v.l.Log(context.Background(), level, fmt.Sprintf(format, args...))
}

func (v vkLogger) Debug(args ...any)                 { v.log(slog.LevelDebug, args...) }
func (v vkLogger) Debugf(format string, args ...any) { v.logf(slog.LevelDebug, format, args...) }
func (v vkLogger) Info(args ...any)                  { v.log(slog.LevelDebug, args...) } // virtual-kubelet is chatty
func (v vkLogger) Infof(format string, args ...any)  { v.logf(slog.LevelDebug, format, args...) }
func (v vkLogger) Warn(args ...any)                  { v.log(slog.LevelWarn, args...) }
func (v vkLogger) Warnf(format string, args ...any)  { v.logf(slog.LevelWarn, format, args...) }
func (v vkLogger) Error(args ...any)                 { v.log(slog.LevelError, args...) }
func (v vkLogger) Errorf(format string, args ...any) { v.logf(slog.LevelError, format, args...) }
func (v vkLogger) Fatal(args ...any)                 { v.log(slog.LevelError, args...) }
func (v vkLogger) Fatalf(format string, args ...any) { v.logf(slog.LevelError, format, args...) }

func (v vkLogger) WithField(k string, val any) vklog.Logger { return vkLogger{v.l.With(k, val)} }

func (v vkLogger) WithFields(f vklog.Fields) vklog.Logger {
	args := make([]any, 0, 2*len(f))
	for k, val := range f {
		args = append(args, k, val)
	}
	return vkLogger{v.l.With(args...)}
}

func (v vkLogger) WithError(err error) vklog.Logger { return vkLogger{v.l.With("error", err)} }
