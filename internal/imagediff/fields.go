package imagediff

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// diffJSON compares two JSON documents (what names them in errors and
// notes) key by key and returns the fields that differ, leaving out the
// paths skip accepts and everything under them. skip is asked about each
// path, with both telling whether both documents have it.
func diffJSON(what string, a, b []byte, skip func(path string, both bool) bool) ([]Field, error) {
	va, err := parseJSON(a)
	if err != nil {
		return nil, fmt.Errorf("parse %s of image a: %w", what, err)
	}
	vb, err := parseJSON(b)
	if err != nil {
		return nil, fmt.Errorf("parse %s of image b: %w", what, err)
	}
	if !bytes.Equal(a, b) && reflect.DeepEqual(va, vb) {
		return []Field{{Note: "the " + what + "s hold the same JSON, encoded differently (key order, spacing or escapes)"}}, nil
	}
	var out []Field
	diffValues("", va, vb, skip, &out)
	return out, nil
}

// parseJSON parses data keeping numbers as they are written, so that a
// value is shown as the document has it.
func parseJSON(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// diffValues appends to out the fields under path that differ between a
// and b: objects are compared key by key in key order, arrays index by
// index, anything else as a whole.
func diffValues(path string, a, b any, skip func(string, bool) bool, out *[]Field) {
	switch av := a.(type) {
	case map[string]any:
		if bv, ok := b.(map[string]any); ok {
			keys := slices.Collect(maps.Keys(av))
			for k := range bv {
				if _, ok := av[k]; !ok {
					keys = append(keys, k)
				}
			}
			slices.Sort(keys)
			for _, k := range keys {
				x, inA := av[k]
				y, inB := bv[k]
				diffMember(joinPath(path, k), x, y, inA, inB, skip, out)
			}
			return
		}
	case []any:
		if bv, ok := b.([]any); ok {
			for i := range max(len(av), len(bv)) {
				var x, y any
				if i < len(av) {
					x = av[i]
				}
				if i < len(bv) {
					y = bv[i]
				}
				diffMember(joinPath(path, strconv.Itoa(i)), x, y, i < len(av), i < len(bv), skip, out)
			}
			return
		}
	}
	if !reflect.DeepEqual(a, b) {
		*out = append(*out, Field{Path: path, A: encodeJSON(a), B: encodeJSON(b)})
	}
}

// diffMember compares the values at path, which one side may lack.
func diffMember(path string, a, b any, inA, inB bool, skip func(string, bool) bool, out *[]Field) {
	switch {
	case skip(path, inA && inB):
	case inA && inB:
		diffValues(path, a, b, skip, out)
	case inA:
		*out = append(*out, Field{Path: path, A: encodeJSON(a)})
	case inB:
		*out = append(*out, Field{Path: path, B: encodeJSON(b)})
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// encodeJSON returns v as compact JSON, without the HTML escapes of
// json.Marshal: a label value "<none>" stays readable.
func encodeJSON(v any) string {
	var b strings.Builder
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		// v came from json.Decoder, so it always encodes.
		return fmt.Sprintf("%v", v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// skipManifestField leaves out the manifest fields that Report.Config and
// Report.Layers cover: the config's and the layers' digests and sizes, and
// layers only one image has.
func skipManifestField(path string, both bool) bool {
	switch path {
	case "config.digest", "config.size":
		return true
	case "layers":
		return !both
	}
	rest, ok := strings.CutPrefix(path, "layers.")
	if !ok {
		return false
	}
	index, key, _ := strings.Cut(rest, ".")
	if _, err := strconv.Atoi(index); err != nil {
		return false
	}
	return key == "" && !both || key == "digest" || key == "size"
}

// skipConfigField leaves out rootfs.diff_ids, which Report.Layers covers.
func skipConfigField(path string, _ bool) bool {
	rest, ok := strings.CutPrefix(path, "rootfs.diff_ids")
	return ok && (rest == "" || rest[0] == '.')
}
