package model

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrPinned: the model file is not the one the config pins by sha256 (model.sha256).
var ErrPinned = errors.New("model does not match its pinned sha256")

// Bundle is a model as an engine receives it: the graph's bytes read once, its
// metadata, and the SHA-256 of those very bytes, verified together once (sizes,
// metadata, hash, pin) whatever engine runs it. The bytes hashed are the bytes the
// engine loads, even if the file is replaced meanwhile.
type Bundle struct {
	Path   string // the graph file, as configured
	Graph  []byte
	SHA256 string // of Graph, lowercase hex
	Meta   *Metadata
}

// OpenBundle reads the graph at path (ReadGraph) and its metadata at metaPath (Load),
// and checks that the graph is the one the metadata describes and, when pin is not
// "", the one the config pins. Errors: ErrModel (the graph file), ErrMetadata (the
// metadata, or a graph it does not describe), ErrPinned.
func OpenBundle(path, metaPath, pin string) (*Bundle, error) {
	meta, err := Load(metaPath)
	if err != nil {
		return nil, err
	}
	data, err := ReadGraph(path)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(data)
	sum := hex.EncodeToString(h[:])
	if err := meta.checkSum(path, sum); err != nil {
		return nil, err
	}
	if pin != "" && !strings.EqualFold(pin, sum) {
		return nil, fmt.Errorf("%w: %s: sha256 %s.. is not the pinned model.sha256 %s..", ErrPinned, path, sum[:12], short(pin))
	}
	return &Bundle{Path: path, Graph: data, SHA256: sum, Meta: meta}, nil
}
