package bench

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
)

// Runner runs the program bin with env, returning its stdout; a failure carries its stderr.
func Runner(bin string, env []string) func(args ...string) (string, error) {
	return func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, errOut.String())
		}
		return out.String(), nil
	}
}
