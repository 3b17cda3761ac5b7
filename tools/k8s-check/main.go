// k8s-check reads Kubernetes manifests offline: every YAML document of
// every file is decoded strictly into the Kubernetes API's own Go types
// (k8s.io/api at the version go.mod pins), which refuses an unknown kind, an
// unknown or misspelt field, a field given twice and a value of the wrong
// type. It needs no cluster; it does not run the API server's semantic
// validation (required fields, value ranges).
//
//	k8s-check FILE...   one line per document; exit 1 if any is refused
package main

import (
	"bytes"
	"fmt"
	"os"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: k8s-check FILE...")
		os.Exit(2)
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme,
		networkingv1.AddToScheme, rbacv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	decode := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer().Decode
	bad := 0
	for _, file := range os.Args[1:] {
		data, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		for i, doc := range documents(data) {
			_, gvk, err := decode(doc, nil, nil)
			if err != nil {
				fmt.Printf("%s: document %d: refused: %v\n", file, i+1, err)
				bad++
				continue
			}
			fmt.Printf("%s: document %d: %s ok\n", file, i+1, gvk.Kind)
		}
	}
	if bad > 0 {
		os.Exit(1)
	}
}

// documents splits a YAML stream at its "---" lines, dropping documents
// that hold only comments or nothing.
func documents(data []byte) [][]byte {
	var docs [][]byte
	for _, part := range bytes.Split(append([]byte("\n"), data...), []byte("\n---")) {
		meaningful := false
		for _, line := range bytes.Split(part, []byte("\n")) {
			t := bytes.TrimSpace(line)
			if len(t) > 0 && t[0] != '#' {
				meaningful = true
				break
			}
		}
		if meaningful {
			docs = append(docs, part)
		}
	}
	return docs
}
