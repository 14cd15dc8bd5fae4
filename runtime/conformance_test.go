package runtime_test

import (
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"fnkit.dev/fn/runtime/cetest"
)

// TestCloudEventsConformance runs the CloudEvents conformance cases against the runtime,
// with and without a timeout (whose response writer differs).
func TestCloudEventsConformance(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Timeout = m.timeout
			rec := &eventRecorder{reply: cetest.Echo}
			rs := start(t, rec.function(), cfg, true)
			cetest.Run(t, rs.client, rs.url+"/", func() []event.Event { return rec.received(t) })
		})
	}
}
