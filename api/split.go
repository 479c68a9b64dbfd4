package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"sigs.k8s.io/yaml"
)

// rawDocument is one document of an input, parsed into a JSON tree.
type rawDocument struct {
	number int   // 1-based among the non-empty documents
	line   int   // where it starts, 0 for JSON input
	value  any   // the JSON tree (objects are map[string]any, numbers json.Number)
	err    error // why it could not be parsed
}

// splitDocuments parses data into its non-empty documents: a stream of JSON values,
// or YAML documents separated by "---" lines. Comment-only and empty YAML documents
// are dropped. A top-level JSON list is taken as a list of documents.
func splitDocuments(data []byte) []rawDocument {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 byte order mark
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		if docs, ok := splitJSON(trimmed); ok {
			return docs
		}
	}
	return splitYAML(data)
}

// splitJSON decodes a stream of JSON values; ok is false if data is not JSON.
func splitJSON(data []byte) (docs []rawDocument, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return docs, true
		}
		if err != nil {
			return nil, false
		}
		if list, isList := v.([]any); isList {
			for _, item := range list {
				docs = append(docs, rawDocument{number: len(docs) + 1, value: item})
			}
			continue
		}
		docs = append(docs, rawDocument{number: len(docs) + 1, value: v})
	}
}

// yamlChunk is the text of one YAML document and the line it starts on.
type yamlChunk struct {
	text []byte
	line int
}

func splitYAML(data []byte) []rawDocument {
	var docs []rawDocument
	for _, c := range yamlChunks(data) {
		v, err := parseYAML(c.text)
		if err == nil && v == nil {
			continue // empty or comment-only
		}
		docs = append(docs, rawDocument{number: len(docs) + 1, line: c.line + contentOffset(c.text), value: v, err: err})
	}
	return docs
}

// contentOffset is the number of lines before the first line of text that is neither
// blank nor a comment.
func contentOffset(text []byte) int {
	for i, l := range bytes.Split(text, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) > 0 && l[0] != '#' {
			return i
		}
	}
	return 0
}

// yamlChunks cuts data at document separator lines ("---", optionally followed by a
// space and more text) and drops document end markers ("...").
func yamlChunks(data []byte) []yamlChunk {
	var chunks []yamlChunk
	cur := yamlChunk{line: 1}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), len(data)+1)
	sc.Split(scanLinesKeepEnd)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Bytes()
		bare := strings.TrimRight(string(text), "\r\n")
		switch {
		case bare == "---" || strings.HasPrefix(bare, "--- ") || strings.HasPrefix(bare, "---\t"):
			chunks = append(chunks, cur)
			cur = yamlChunk{line: line}
			// Content after "--- " on the same line belongs to the new document.
			cur.text = append(cur.text, strings.TrimLeft(bare[3:], " \t")...)
			cur.text = append(cur.text, '\n')
		case bare == "..." || strings.HasPrefix(bare, "... "):
			// document end marker
		default:
			cur.text = append(cur.text, text...)
		}
	}
	return append(chunks, cur)
}

// scanLinesKeepEnd is bufio.ScanLines that keeps the line endings.
func scanLinesKeepEnd(data []byte, atEOF bool) (int, []byte, error) {
	if atEOF && len(data) == 0 {
		return 0, nil, nil
	}
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i+1], nil
	}
	if atEOF {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// parseYAML converts one YAML document into a JSON tree, nil for an empty document.
// Duplicate keys are errors, as they are for kubectl.
func parseYAML(text []byte) (v any, err error) {
	defer func() {
		// The YAML parser is third-party code fed with user input; never let a bug
		// in it take the process down.
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("invalid YAML: %v", r)
		}
	}()
	j, err := yaml.YAMLToJSONStrict(text)
	if err != nil {
		return nil, fmt.Errorf("invalid YAML: %s", strings.TrimPrefix(err.Error(), "error converting YAML to JSON: "))
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid YAML: %v", err)
	}
	return v, nil
}
