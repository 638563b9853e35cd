package main

import (
	"slices"
	"testing"
)

// The texts below are short excerpts with the distinctive sentences of each
// licence, wrapped and punctuated the way licence files vary in the wild.
const (
	mitText = `MIT License

Copyright (c) 2031 Example Authors

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction ...

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.`

	bsd3Text = `Copyright © 2031 Example Authors. All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are
met:

   * Redistributions of source code must retain the above copyright
notice, this list of conditions and the following disclaimer.
   * Neither the name of Example Inc. nor the names of its
contributors may be used to endorse or promote products derived from
this software without specific prior written permission.`

	bsd2Text = `Copyright (c) 2031, Example Authors

Redistribution and use in source and binary forms, with or without modification,
are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice.
2. Redistributions in binary form must reproduce the above copyright notice.`

	bsd4Text = bsd3Text + `
   * All advertising materials mentioning features or use of this software
     must display the following acknowledgement: This product includes
     software developed by Example Inc.`

	apacheText = `
                                 Apache License
                           Version 2.0, January 2004
                        http://www.apache.org/licenses/

   TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION`

	apacheNotice = `// Copyright 2031 Example Authors
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.`

	// MPL-2.0 names the GPL family as its Secondary Licenses: that must not
	// read as a GPL.
	mplText = `Mozilla Public License, version 2.0

1. Definitions

1.12. “Secondary License”
     means either the GNU General Public License, Version 2.0, the GNU Lesser
     General Public License, Version 2.1, the GNU Affero General Public
     License, Version 3.0, or any later versions of those licenses.`

	iscText = `Copyright (c) 2031 Example Authors

Permission to use, copy, modify, and/or distribute this software for any
purpose with or without fee is hereby granted, provided that the above
copyright notice and this permission notice appear in all copies.`

	zeroBSDText = `Copyright (C) 2031 by Example Authors

Permission to use, copy, modify, and/or distribute this software for any
purpose with or without fee is hereby granted.

THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES`

	zlibText = `This software is provided 'as-is', without any express or implied
warranty.

  2. Altered source versions must be plainly marked as such, and must not be
     misrepresented as being the original software.`

	boostText = `Boost Software License - Version 1.0 - August 17th, 2003

Permission is hereby granted, free of charge, to any person or organization
obtaining a copy of the software and accompanying documentation covered by
this license (the "Software") to use, reproduce, display, distribute ...`

	unlicenseText = `This is free and unencumbered software released into the public domain.

Anyone is free to copy, modify, publish, use, compile, sell, or
distribute this software ...`

	cc0Text = `Creative Commons Legal Code

CC0 1.0 Universal

    CREATIVE COMMONS CORPORATION IS NOT A LAW FIRM ...`

	// A representative Business Source License header, with a Change
	// License that must not count as the licence in force.
	buslText = `License text copyright (c) 2031 Example Corp, All Rights Reserved.
"Business Source License" is a trademark of Example Corp.

Parameters

Licensor:             Example Corp.
Licensed Work:        Example Vault 9.0 or later.
Additional Use Grant: None.
Change Date:          Four years from the date the Licensed Work is published.
Change License:       Mozilla Public License, version 2.0

Notice

Business Source License 1.1

Terms

The Licensor hereby grants you the right to copy, modify, create derivative
works, redistribute, and make non-production use of the Licensed Work.`

	ssplText = `                     Server Side Public License
                     VERSION 1, OCTOBER 16, 2018`

	elasticText = `Elastic License 2.0

URL: https://www.elastic.co/licensing/elastic-license`

	commonsClauseText = apacheNotice + `

"Commons Clause" License Condition v1.0

The Software is provided to you by the Licensor under the License, as defined
below, subject to the following condition.`

	gpl3Text = `                    GNU GENERAL PUBLIC LICENSE
                       Version 3, 29 June 2007

 Copyright (C) 2007 Free Software Foundation, Inc.`

	lgplNotice = `This library is free software; you can redistribute it and/or
modify it under the terms of the GNU Lesser General Public
License as published by the Free Software Foundation; either
version 2.1 of the License, or (at your option) any later version.`

	agplText = `                    GNU AFFERO GENERAL PUBLIC LICENSE
                       Version 3, 19 November 2007`

	// Two licences in one file, one for each part of the module.
	mitAndApacheText = "This project is covered by two different licenses: MIT and Apache.\n\n#### MIT License ####\n\n" +
		mitText + "\n\n### Apache License ###\n\n" + apacheNotice
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		want []string
	}{
		{"MIT", mitText, []string{"MIT"}},
		{"BSD-3-Clause", bsd3Text, []string{"BSD-3-Clause"}},
		{"BSD-2-Clause", bsd2Text, []string{"BSD-2-Clause"}},
		{"BSD-4-Clause", bsd4Text, []string{"BSD-4-Clause"}},
		{"Apache-2.0 text", apacheText, []string{"Apache-2.0"}},
		{"Apache-2.0 notice", apacheNotice, []string{"Apache-2.0"}},
		{"MPL-2.0 (names the GPLs)", mplText, []string{"MPL-2.0"}},
		{"ISC", iscText, []string{"ISC"}},
		{"0BSD", zeroBSDText, []string{"0BSD"}},
		{"Zlib", zlibText, []string{"Zlib"}},
		{"Boost is not BUSL", boostText, []string{"BSL-1.0"}},
		{"Unlicense", unlicenseText, []string{"Unlicense"}},
		{"CC0", cc0Text, []string{"CC0-1.0"}},
		{"BUSL without its Change License", buslText, []string{"BUSL-1.1"}},
		{"BUSL by SPDX id", "SPDX-License-Identifier: BUSL-1.1", []string{"BUSL-1.1"}},
		{"BUSL inside MIT", mitText + "\n\n" + buslText, []string{"BUSL-1.1"}},
		{"SSPL", ssplText, []string{"SSPL-1.0"}},
		{"Elastic", elasticText, []string{"Elastic-2.0"}},
		{"Commons Clause on Apache", commonsClauseText, []string{"Commons-Clause", "Apache-2.0"}},
		{"GPL-3.0", gpl3Text, []string{"GPL"}},
		{"LGPL notice", lgplNotice, []string{"LGPL"}},
		{"AGPL-3.0", agplText, []string{"AGPL"}},
		{"MIT and Apache in one file", mitAndApacheText, []string{"MIT", "Apache-2.0"}},
		{"proprietary", "Copyright 2031 Example Corp. All rights reserved. Do not redistribute.", nil},
		{"a bare name is not a licence text", "Licensed under MIT.", nil},
		{"empty", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.text); !slices.Equal(got, tc.want) {
				t.Errorf("Classify = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNormalise(t *testing.T) {
	for in, want := range map[string]string{
		"":                            " ",
		"Apache License, Version 2.0": " apache license version 2 0 ",
		"“Contributor”\n  means":      " contributor means ",
		"// and/or\r\n# modify":       " and or modify ",
		"Altı ÉTÉ":                    " altı été ",
	} {
		if got := normalise(in); got != want {
			t.Errorf("normalise(%q) = %q, want %q", in, got, want)
		}
	}
}

// Every id of the table is unique, and every licence has a phrase.
func TestLicenceTable(t *testing.T) {
	seen := map[string]bool{}
	for _, l := range licences {
		if seen[l.id] {
			t.Errorf("%s twice in the table", l.id)
		}
		seen[l.id] = true
		if len(l.anyOf) == 0 {
			t.Errorf("%s has no phrase", l.id)
		}
		for _, p := range append(append(append([]string{}, l.anyOf...), l.allOf...), l.noneOf...) {
			if normalise(p) != " "+p+" " {
				t.Errorf("%s: phrase %q is not normalised", l.id, p)
			}
		}
	}
}
