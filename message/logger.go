package message

import (
	"context"
	"log/slog"
)

type loggerKey struct{}

// WithLogger returns a context that carries l. The consumer engine puts the subscriber's
// logger into every handler's context, and Publisher.Publish puts the connection's logger into
// the context publish middleware sees, so that middleware logs where the program told Courier
// to log (transport.ConnConfig.Logger) without being configured twice.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	if l == nil {
		return ctx
	}
	return context.WithValue(ctx, loggerKey{}, l)
}

// LoggerFrom returns the logger carried by ctx (see WithLogger), or slog.Default() when there
// is none. It never returns nil. Middleware whose own Config.Logger is unset logs through it.
func LoggerFrom(ctx context.Context) *slog.Logger {
	if ctx != nil {
		if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok && l != nil {
			return l
		}
	}
	return slog.Default()
}
