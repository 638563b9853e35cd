package main

import (
	"strings"
	"unicode"
)

// status is what the check makes of a licence.
type status int

const (
	// osi: an OSI-approved licence; the module passes.
	osi status = iota
	// refused: a source-available licence (BUSL, SSPL, ...), not open source.
	refused
	// notOSI: free enough for some, but not OSI-approved (CC0, BSD-4-Clause,
	// WTFPL); it fails unless a person adds an exception with a reason.
	notOSI
	// review: OSI-approved but strong copyleft (the GPL family); linking it
	// into a static binary is a decision for a person, so it fails until an
	// exception records that decision.
	review
)

func (s status) String() string {
	switch s {
	case osi:
		return "OSI-approved"
	case refused:
		return "source-available, not open source"
	case notOSI:
		return "not OSI-approved"
	case review:
		return "copyleft, needs a person's decision"
	}
	return "unknown status"
}

// licence is one licence the classifier knows, by phrases of its text.
// Phrases are written already normalised (see normalise): lower case, words
// separated by single spaces, no punctuation. A text matches when it holds
// any phrase of anyOf, every phrase of allOf and no phrase of noneOf.
type licence struct {
	id     string // SPDX identifier where there is one
	name   string
	status status
	anyOf  []string
	allOf  []string
	noneOf []string
	// dominant: when this licence is found, the other ids found in the same
	// text are dropped. A Business Source License names its Change License
	// (often MPL-2.0 or Apache-2.0), which is not the licence in force.
	dominant bool
}

const (
	bsdRedistribution = "redistribution and use in source and binary forms with or without modification are permitted provided that the following conditions are met"
	bsdEndorse        = "used to endorse or promote products derived from this software"
	bsdAdvertising    = "all advertising materials mentioning features or use of this software must display"
	iscGrant          = "distribute this software for any purpose with or without fee is hereby granted"
	iscNotice         = "is hereby granted provided that the above copyright notice and this permission notice appear in all copies"
)

// licences is the table the classifier reads, in the order ids are reported.
var licences = []licence{
	// Source-available licences: refused.
	{id: "BUSL-1.1", name: "Business Source License", status: refused, dominant: true,
		anyOf: []string{"business source license", "busl 1 1"}},
	{id: "SSPL-1.0", name: "Server Side Public License", status: refused, dominant: true,
		anyOf: []string{"server side public license"}},
	{id: "Elastic-2.0", name: "Elastic License 2.0", status: refused, dominant: true,
		anyOf: []string{"elastic license 2 0"}},
	{id: "Commons-Clause", name: "Commons Clause", status: refused,
		anyOf: []string{"commons clause license condition"}},
	{id: "FSL", name: "Functional Source License", status: refused, dominant: true,
		anyOf: []string{"functional source license"}},
	{id: "PolyForm", name: "PolyForm licence", status: refused, dominant: true,
		anyOf: []string{"polyform"}},

	// OSI-approved, permissive or weak copyleft: accepted.
	{id: "MIT", name: "MIT License", status: osi,
		anyOf: []string{"permission is hereby granted free of charge to any person obtaining a copy"}},
	{id: "ISC", name: "ISC License", status: osi,
		anyOf: []string{iscNotice}, allOf: []string{iscGrant}},
	{id: "0BSD", name: "BSD Zero Clause License", status: osi,
		anyOf: []string{iscGrant}, noneOf: []string{iscNotice}},
	{id: "BSD-2-Clause", name: "BSD 2-Clause License", status: osi,
		anyOf: []string{bsdRedistribution}, noneOf: []string{bsdEndorse, bsdAdvertising}},
	{id: "BSD-3-Clause", name: "BSD 3-Clause License", status: osi,
		anyOf: []string{bsdRedistribution}, allOf: []string{bsdEndorse}, noneOf: []string{bsdAdvertising}},
	{id: "Apache-2.0", name: "Apache License 2.0", status: osi,
		anyOf: []string{"apache license version 2 0"}},
	{id: "MPL-2.0", name: "Mozilla Public License 2.0", status: osi,
		anyOf: []string{"mozilla public license version 2 0", "mozilla public license v 2 0"}},
	{id: "Zlib", name: "zlib License", status: osi,
		anyOf: []string{"altered source versions must be plainly marked as such and must not be misrepresented as being the original software"}},
	{id: "BSL-1.0", name: "Boost Software License 1.0", status: osi,
		anyOf: []string{"boost software license version 1 0"}},
	{id: "Unlicense", name: "The Unlicense", status: osi,
		anyOf: []string{"this is free and unencumbered software released into the public domain"}},

	// Not OSI-approved.
	{id: "BSD-4-Clause", name: "BSD 4-Clause License", status: notOSI,
		anyOf: []string{bsdRedistribution}, allOf: []string{bsdAdvertising}},
	{id: "CC0-1.0", name: "Creative Commons Zero 1.0", status: notOSI,
		anyOf: []string{"cc0 1 0 universal"}},
	{id: "WTFPL", name: "WTFPL", status: notOSI,
		anyOf: []string{"do what the fuck you want to public license"}},

	// Strong copyleft (OSI-approved): a person decides. The dated headers
	// and the "as published by" notices are used because the MPL-2.0 text
	// itself names the GPL, LGPL and AGPL as its Secondary Licenses.
	{id: "AGPL", name: "GNU Affero General Public License", status: review,
		anyOf: []string{
			"gnu affero general public license version 3 19 november 2007",
			"under the terms of the gnu affero general public license as published by",
		}},
	{id: "LGPL", name: "GNU Lesser General Public License", status: review,
		anyOf: []string{
			"gnu lesser general public license version 2 1 february 1999",
			"gnu lesser general public license version 3 29 june 2007",
			"gnu library general public license version 2 june 1991",
			"under the terms of the gnu lesser general public license as published by",
			"under the terms of the gnu library general public license as published by",
		}},
	{id: "GPL", name: "GNU General Public License", status: review,
		anyOf: []string{
			"gnu general public license version 2 june 1991",
			"gnu general public license version 3 29 june 2007",
			"under the terms of the gnu general public license as published by",
		}},
}

// byID finds a licence of the table by its id.
func byID(id string) (licence, bool) {
	for _, l := range licences {
		if l.id == id {
			return l, true
		}
	}
	return licence{}, false
}

// normalise lowers a text and turns every run of characters that are not
// letters or digits into one space, with a space at each end, so that
// phrases match whole words whatever the line breaks, quotes (straight or
// curly), bullets or comment markers of the file.
func normalise(text string) string {
	var b strings.Builder
	b.Grow(len(text) + 2)
	b.WriteByte(' ')
	space := true
	for _, r := range text {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(unicode.ToLower(r))
			space = false
			continue
		}
		if !space {
			b.WriteByte(' ')
			space = true
		}
	}
	if !space {
		b.WriteByte(' ')
	}
	return b.String()
}

func (l licence) matches(norm string) bool {
	has := func(p string) bool { return strings.Contains(norm, " "+p+" ") }
	found := false
	for _, p := range l.anyOf {
		if has(p) {
			found = true
			break
		}
	}
	if !found {
		return false
	}
	for _, p := range l.allOf {
		if !has(p) {
			return false
		}
	}
	for _, p := range l.noneOf {
		if has(p) {
			return false
		}
	}
	return true
}

// Classify returns the ids of the licences whose distinctive phrases the text
// holds, in the order of the table; none when it recognises nothing. A file
// may hold several licences (one per part of a module), so several ids may
// come back. When a dominant licence (a source-available one) is found, only
// the dominant ids are returned.
func Classify(text string) []string {
	norm := normalise(text)
	var ids, dominant []string
	for _, l := range licences {
		if !l.matches(norm) {
			continue
		}
		ids = append(ids, l.id)
		if l.dominant {
			dominant = append(dominant, l.id)
		}
	}
	if len(dominant) > 0 {
		return dominant
	}
	return ids
}
