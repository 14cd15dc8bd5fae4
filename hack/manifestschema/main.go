// Command manifestschema writes manifest/fn.schema.json, the JSON Schema of fn.yaml, from the
// Function CRD's OpenAPI schema (config/crd), so that editors complete and check fn.yaml with
// the API server's own rules. hack/update-codegen.sh runs it; never edit the output by hand.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

func main() {
	if err := run("config/crd/fnkit.dev_functions.yaml", "manifest/fn.schema.json"); err != nil {
		fmt.Fprintf(os.Stderr, "manifestschema: %v\n", err)
		os.Exit(1)
	}
}

func run(crdPath, out string) error {
	b, err := os.ReadFile(crdPath)
	if err != nil {
		return err
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Name   string
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				}
			}
		}
	}
	if err := yaml.Unmarshal(b, &crd); err != nil {
		return err
	}
	if len(crd.Spec.Versions) != 1 {
		return fmt.Errorf("%s: want one version, have %d", crdPath, len(crd.Spec.Versions))
	}
	props, _ := crd.Spec.Versions[0].Schema.OpenAPIV3Schema["properties"].(map[string]any)
	spec, _ := props["spec"].(map[string]any)
	specProps, _ := spec["properties"].(map[string]any)
	if specProps == nil {
		return fmt.Errorf("%s: no spec properties", crdPath)
	}
	delete(specProps, "image") // built, never written in fn.yaml
	specProps["name"] = map[string]any{
		"description": "The Function's name (default: the function's directory's name).",
		"type":        "string", "maxLength": 63, "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
	}
	specProps["namespace"] = map[string]any{
		"description": "The Function's namespace (default: the kubeconfig context's).",
		"type":        "string", "maxLength": 63, "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
	}
	schema := map[string]any{
		"$schema":              "https://json-schema.org/draft/2020-12/schema",
		"$id":                  "fn.schema.json",
		"title":                "fn.yaml",
		"description":          "The configuration of an fn function: fn deploy makes its Function's spec exactly this file plus the deploy's flags.",
		"type":                 "object",
		"properties":           specProps,
		"additionalProperties": false,
	}
	closeObjects(schema)
	js, err := json.MarshalIndent(schema, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(out, append(js, '\n'), 0o644)
}

// closeObjects drops the Kubernetes-only keywords JSON Schema does not know (CEL rules, list
// types) and refuses keys an object does not name, as fn does.
func closeObjects(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k := range t {
			switch k {
			case "x-kubernetes-validations", "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type":
				delete(t, k)
			}
		}
		if _, ok := t["properties"]; ok && t["type"] == "object" {
			if _, set := t["additionalProperties"]; !set {
				t["additionalProperties"] = false
			}
		}
		if t["x-kubernetes-int-or-string"] == true {
			delete(t, "x-kubernetes-int-or-string")
		}
		// Kubernetes' format duration is Go's (30s, 1m30s; the CRD's pattern says which);
		// JSON Schema's is ISO 8601 (PT30S).
		if t["format"] == "duration" {
			delete(t, "format")
		}
		for k, c := range t {
			if k == "properties" {
				for _, p := range c.(map[string]any) {
					closeObjects(p)
				}
				continue
			}
			closeObjects(c)
		}
	case []any:
		for _, c := range t {
			closeObjects(c)
		}
	}
}
