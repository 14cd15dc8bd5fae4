package platform

import (
	"io"

	"go.uber.org/zap/zapcore"
)

func zapcoreNew(enc zapcore.EncoderConfig, w io.Writer) zapcore.Core {
	return zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(w), zapcore.InfoLevel)
}
