package tests

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
)

// domNode is one element of a page as a browser serialized it (Chromium's
// --dump-dom), read with encoding/xml in its lenient HTML mode: enough for
// pages whose markup the test knows (the status page has no inline script).
// Every method is safe on a nil node.
type domNode struct {
	name     string
	attrs    map[string]string
	children []*domNode
	all      []any // children and character data, in document order
}

func parseDOM(page []byte) (*domNode, error) {
	d := xml.NewDecoder(bytes.NewReader(page))
	d.Strict = false
	d.AutoClose = xml.HTMLAutoClose
	d.Entity = xml.HTMLEntity
	root := &domNode{name: "#document"}
	stack := []*domNode{root}
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		top := stack[len(stack)-1]
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &domNode{name: strings.ToLower(tok.Name.Local), attrs: map[string]string{}}
			for _, a := range tok.Attr {
				n.attrs[strings.ToLower(a.Name.Local)] = a.Value
			}
			top.children = append(top.children, n)
			top.all = append(top.all, n)
			stack = append(stack, n)
		case xml.EndElement:
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
		case xml.CharData:
			top.all = append(top.all, string(tok))
		}
	}
	if len(root.children) == 0 {
		return nil, errors.New("the page has no element")
	}
	return root, nil
}

func (n *domNode) attr(k string) string {
	if n == nil {
		return ""
	}
	return n.attrs[k]
}

// find returns the first element below n (n included) that match accepts.
func (n *domNode) find(match func(*domNode) bool) *domNode {
	if n == nil {
		return nil
	}
	if match(n) {
		return n
	}
	for _, c := range n.children {
		if f := c.find(match); f != nil {
			return f
		}
	}
	return nil
}

// text returns the text of the first element below n that match accepts
// (n itself when match is nil), whitespace trimmed; "" when none matches.
func (n *domNode) text(match func(*domNode) bool) string {
	if match != nil {
		n = n.find(match)
	}
	if n == nil {
		return ""
	}
	var b strings.Builder
	n.collect(&b)
	return strings.TrimSpace(b.String())
}

func (n *domNode) collect(b *strings.Builder) {
	for _, x := range n.all {
		switch x := x.(type) {
		case string:
			b.WriteString(x)
		case *domNode:
			x.collect(b)
		}
	}
}

func attrIs(k, v string) func(*domNode) bool {
	return func(n *domNode) bool { return n.attrs[k] == v }
}
