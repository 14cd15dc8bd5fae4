module fnkit.dev/fn/bench/runtime/peers

go 1.24

require (
	fnkit.dev/fn/examples/echo-event v0.0.0
	fnkit.dev/fn/examples/hello v0.0.0
	github.com/GoogleCloudPlatform/functions-framework-go v1.9.2
	github.com/cloudevents/sdk-go/v2 v2.16.2
)

require (
	cloud.google.com/go/functions v1.19.3 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/json-iterator/go v1.1.12 // indirect
	github.com/modern-go/concurrent v0.0.0-20180306012644-bacd9c7ef1dd // indirect
	github.com/modern-go/reflect2 v1.0.2 // indirect
	go.uber.org/multierr v1.11.0 // indirect
	go.uber.org/zap v1.27.0 // indirect
)

replace (
	fnkit.dev/fn/examples/echo-event => ../../../examples/echo-event
	fnkit.dev/fn/examples/hello => ../../../examples/hello
)
