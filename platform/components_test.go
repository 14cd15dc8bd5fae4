package platform

import (
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestComponentArgs checks that each component's command line, parsed by its own command's
// flags, gives back the spec it was made from: no field is left out or mangled on the way.
func TestComponentArgs(t *testing.T) {
	specs := []Component{
		&AgentSpec{Node: "n", Dir: "/h/agent", PodCIDR: "10.244.0.0/24", Kubeconfig: "/h/k", Registry: "127.0.0.1:1", Log: "/h/l", LeaseSeconds: 8},
		&RegistrySpec{Dir: "/h/registry", Addr: "127.0.0.1:2", ListenFD: 3},
		&ControllerSpec{Kubeconfig: "/h/k", AutoscalerAddr: "127.0.0.1:3", Domain: "fn.local", GatewayURL: "http://g", Identity: "id"},
		&GatewaySpec{Kubeconfig: "/h/k", Addr: "127.0.0.1:4", InternalAddr: "127.0.0.1:5", Domain: "d", AutoscalerURL: "http://a", ID: "g", Events: "nats://127.0.0.1:7", ListenFD: 3},
		&BuilderSpec{Kubeconfig: "/h/k", Addr: "127.0.0.1:6", Dir: "/h/b", Registry: "r/fns", URL: "http://b", ListenFD: 4},
		&EventsSpec{Dir: "/h/events", Addr: "127.0.0.1:8", MonitorAddr: "127.0.0.1:9"},
	}
	zero := map[string]Component{}
	for _, c := range Components() {
		zero[c.Name()] = c
	}
	for _, want := range specs {
		args := ComponentArgs(want)
		if len(args) < 2 || args[0] != "internal" || args[1] != want.Name() {
			t.Fatalf("%s: args %q do not start with internal %s", want.Name(), args, want.Name())
		}
		// Every field is set in the specs above, so each must be on the command line.
		if n := reflect.ValueOf(want).Elem().NumField(); len(args)-2 != n {
			t.Errorf("%s: %d flags for %d fields: %q", want.Name(), len(args)-2, n, args)
		}
		got := zero[want.Name()]
		fs := pflag.NewFlagSet(got.Name(), pflag.ContinueOnError)
		got.Bind(fs)
		if err := fs.Parse(args[2:]); err != nil {
			t.Fatalf("%s: parsing %q: %v", want.Name(), args, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %q parsed into %+v, want %+v", want.Name(), strings.Join(args, " "), got, want)
		}
	}
}

// The local platform's processes run with LocalGOGC unless GOGC is set; the gateway with its own.
func TestComponentGOGC(t *testing.T) {
	t.Setenv("GOGC", "")
	if got, want := gogc(&ControllerSpec{}), "GOGC=50"; got != want {
		t.Errorf("controller: %q, want %q", got, want)
	}
	if got, want := gogc(&GatewaySpec{}), "GOGC=400"; got != want {
		t.Errorf("gateway: %q, want %q", got, want)
	}
	if got := localGOGC(); got != LocalGOGC {
		t.Errorf("control plane: %d, want %d", got, LocalGOGC)
	}
	t.Setenv("GOGC", "200")
	if got := gogc(&GatewaySpec{}); got != "" {
		t.Errorf("with GOGC set, the gateway's entry is %q, want none (inherited)", got)
	}
	if got := localGOGC(); got != 0 {
		t.Errorf("with GOGC set, the control plane's is %d, want 0 (inherited)", got)
	}
}
