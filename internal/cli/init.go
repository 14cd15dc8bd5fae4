package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"fnkit.dev/fn/builder"
	"fnkit.dev/fn/manifest"
	"fnkit.dev/fn/templates"
)

type initOptions struct {
	template string
	module   string
	out      outputFlag
}

func newInitCommand(s IOStreams) *cobra.Command {
	o := &initOptions{}
	c := &cobra.Command{
		Use:   "init DIR",
		Short: "Write a new function project into DIR",
		Example: `  fn init hello
  fn init orders --template typed --module example.com/orders`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.out.validate(); err != nil {
				return err
			}
			return o.run(s, args[0])
		},
	}
	c.Flags().StringVarP(&o.template, "template", "t", "http", "starter: "+strings.Join(templates.Names(), ", "))
	_ = c.RegisterFlagCompletionFunc("template", cobra.FixedCompletions(templates.Names(), cobra.ShellCompDirectiveNoFileComp))
	c.Flags().StringVar(&o.module, "module", "", "Go module path of the new project (default: the directory's name)")
	o.out.yaml = true
	o.out.add(c)
	return c
}

func (o *initOptions) run(s IOStreams, dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	name := filepath.Base(abs)
	if err := builder.ValidateName(name); err != nil {
		return &UsageError{fmt.Errorf("%w: the directory's name is the function's, choose another", err)}
	}
	module := o.module
	if module == "" {
		module = name
	}
	files, err := templates.Write(abs, o.template, module)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(abs, manifest.File), manifest.Starter(name), 0o644); err != nil {
		return err
	}
	files = append(files, manifest.File)
	if o.out.structured() {
		return o.out.print(s.Out, map[string]any{"name": name, "dir": abs, "template": o.template, "module": module, "files": files})
	}
	fmt.Fprintf(s.ErrOut, "Created %s function %s in %s\nNext: fn run %s\n  then, in another terminal: %s\n", o.template, name, dir, dir, invokeHint(o.template))
	fmt.Fprintln(s.Out, abs)
	return nil
}

// invokeArgs are the arguments of an fn invoke that the template's function, served by fn run
// at url, answers with 200.
func invokeArgs(template, url string) []string {
	switch template {
	case "typed":
		return []string{"invoke", "--url", url, "--data", `{"name":"Gopher"}`}
	case "cloudevents":
		return []string{"invoke", "--url", url, "--cloudevent", "--type", "dev.example.greet", "--source", "fn/cli", "--data", `{"name":"Gopher"}`}
	}
	return []string{"invoke", "--url", url + "/?name=Gopher"}
}

// invokeHint is invokeArgs as a shell command for fn run's default port.
func invokeHint(template string) string {
	args := invokeArgs(template, "http://localhost:8080")
	for i, a := range args {
		if strings.ContainsAny(a, `{}"?&* '`) {
			args[i] = "'" + a + "'"
		}
	}
	return "fn " + strings.Join(args, " ")
}
