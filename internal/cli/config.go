package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"fnkit.dev/fn/controller/apis/fn/v1alpha1"
	"fnkit.dev/fn/manifest"
)

func newConfigCommand(s IOStreams) *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "config",
		Short: "Read and edit a function's fn.yaml",
		Long: `Read and edit fn.yaml, the configuration of the function in --path (default: the current
directory). Keys are dotted paths: name, namespace, timeout, concurrency, scale.min, scale.max,
scale.target, scale.metric, scale.window, scale.scaleDownDelay, scale.initial, resources,
envFrom, source.git.url... Every change is checked as fn deploy checks the file; a change it
refuses writes nothing. Comments and the order of keys are kept.`,
		Example: `  fn config set scale.min 1
  fn config get scale
  fn config unset timeout
  fn config env set GREETING=hi LEVEL=debug
  fn config env unset LEVEL`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	c.PersistentFlags().StringVarP(&dir, "path", "p", ".", "the function's directory")
	open := func() (*manifest.Doc, error) { return manifest.Open(dir) }

	get := &cobra.Command{
		Use:   "get [KEY]",
		Short: "Print a key's value, or the whole file",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			d, err := open()
			if err != nil {
				return err
			}
			key := ""
			if len(args) == 1 {
				key = args[0]
			}
			v, ok, err := d.Get(key)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%s: %s is not set", d.Path, key)
			}
			fmt.Fprint(s.Out, v)
			return nil
		},
	}
	set := &cobra.Command{
		Use:   "set KEY VALUE",
		Short: "Set a key (VALUE is YAML: 2, 30s, concurrency)",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			return edit(s, open, func(d *manifest.Doc) error {
				if args[0] == "env" || strings.HasPrefix(args[0], "env.") {
					return &UsageError{fmt.Errorf("set variables with fn config env set NAME=VALUE")}
				}
				return d.Set(args[0], args[1])
			})
		},
	}
	set.Flags().SetInterspersed(false) // fn config set concurrency -5: a value, not a flag
	unset := &cobra.Command{
		Use:   "unset KEY",
		Short: "Remove a key (the cluster's default applies again)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return edit(s, open, func(d *manifest.Doc) error { return d.Unset(args[0]) })
		},
	}
	env := &cobra.Command{Use: "env", Short: "Set and unset environment variables in fn.yaml",
		Args: cobra.NoArgs, RunE: func(c *cobra.Command, _ []string) error { return c.Help() }}
	envSet := &cobra.Command{
		Use:   "set NAME=VALUE...",
		Short: "Set environment variables",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			for _, kv := range args {
				k, _, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return &UsageError{fmt.Errorf("%q: want NAME=VALUE", kv)}
				}
				if v1alpha1.ReservedEnv(k) {
					return &UsageError{fmt.Errorf("%s: PORT and names beginning with FN_ are set by fn: use timeout, concurrency and scale instead", k)}
				}
			}
			return edit(s, open, func(d *manifest.Doc) error {
				for _, kv := range args {
					k, v, _ := strings.Cut(kv, "=")
					if err := d.SetEnv(k, v); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	envUnset := &cobra.Command{
		Use:   "unset NAME...",
		Short: "Remove environment variables",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return edit(s, open, func(d *manifest.Doc) error {
				for _, k := range args {
					if err := d.UnsetEnv(k); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	env.AddCommand(envSet, envUnset)
	c.AddCommand(get, set, unset, env)
	return c
}

// edit opens fn.yaml, applies change and saves the file only when every change was accepted.
func edit(s IOStreams, open func() (*manifest.Doc, error), change func(*manifest.Doc) error) error {
	d, err := open()
	if err != nil {
		return err
	}
	if err := change(d); err != nil {
		return err
	}
	if err := d.Save(); err != nil {
		return err
	}
	fmt.Fprintf(s.ErrOut, "Wrote %s.\n", d.Path)
	return nil
}
