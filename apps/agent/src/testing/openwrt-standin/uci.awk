# A stand-in for OpenWrt's `uci`, for tests on machines without OpenWrt (Debian has no uci).
# It is written independently of the agent's TypeScript parser and diff (so a bug there is not
# mirrored here) and implements the part of uci the agent relies on, with uci's behaviour:
#   uci export PKG          the package as `package PKG` + config/option/list lines; exit 1 and
#                           "uci: Entry not found" when the package does not exist
#   uci batch               commands on stdin: set, add_list, delete, reorder, commit, revert;
#                           each change is staged (saved under the save dir) until commit; an
#                           error is printed ("uci: Entry not found") and the batch goes on; the
#                           exit status is 0 whatever happened, like uci's
#   uci commit PKG          writes the staged package to /etc/config/PKG (temp file + rename)
#   uci revert PKG          drops what is staged
#   uci import PKG          replaces the package with stdin and commits it
#   uci set|add_list|delete|reorder ...   one command, staged like in a batch
#   uci get PKG.SEC[.OPT]   for tests
# Simplifications: the staged state is a whole copy of the package (uci keeps a delta file); the
# save dir is /tmp/.uci as on OpenWrt; -q, -c DIR and -P DIR are accepted.
# Run by the `uci` shell wrapper beside it with busybox awk (stdin is passed in a file).

function err(msg) {
	if (!quiet) printf "uci: %s\n", msg > "/dev/stderr"
}

function valid_name(s) { return s ~ /^[A-Za-z0-9_]+$/ }
function valid_type(s) { return s ~ /^[A-Za-z0-9_-]+$/ }

# ---- tokenizer (libuci's parse_str): fills TOK_N commands, TOK_C[k] words, TOK[k, m] ----
function tokenize(text,    n, i, c, w, inword, k, m, done) {
	split("", TOK); split("", TOK_C); TOK_N = 0
	n = length(text); i = 1; k = 0; m = 0
	while (i <= n) {
		c = substr(text, i, 1)
		if (c == "\n" || c == ";") { if (m > 0) { TOK_C[k] = m; m = 0 } i++; continue }
		if (c == " " || c == "\t" || c == "\r") { i++; continue }
		if (c == "#") { while (i <= n && substr(text, i, 1) != "\n") i++; continue }
		if (m == 0) { k++; TOK_N = k }
		w = ""; done = 0
		while (i <= n && !done) {
			c = substr(text, i, 1)
			if (c == "'") {
				i++
				while (i <= n && substr(text, i, 1) != "'") { w = w substr(text, i, 1); i++ }
				if (i > n) { PARSE_ERR = "EOF with unterminated '"; return 0 }
				i++
			} else if (c == "\"") {
				i++
				while (i <= n && substr(text, i, 1) != "\"") {
					if (substr(text, i, 1) == "\\") {
						i++
						if (substr(text, i, 1) == "\n") { i++; continue }
					}
					w = w substr(text, i, 1); i++
				}
				if (i > n) { PARSE_ERR = "EOF with unterminated \""; return 0 }
				i++
			} else if (c == "\\") {
				i++
				if (substr(text, i, 1) == "\n") { i++; continue }
				w = w substr(text, i, 1); i++
			} else if (c == "#") {
				while (i <= n && substr(text, i, 1) != "\n") i++
				done = 1
			} else if (c == " " || c == "\t" || c == "\r" || c == "\n" || c == ";") {
				done = 1
			} else { w = w c; i++ }
		}
		m++; TOK[k, m] = w
	}
	if (m > 0) TOK_C[k] = m
	return 1
}

# ---- the package model ----
# NS sections; ST[s] type, SN[s] name, SA[s] anonymous; NO[s] options; ON[s,o] name, OL[s,o] list?,
# OC[s,o] items, OV[s,o,k] values.
function clear_pkg() { split("", ST); split("", SN); split("", SA); split("", NO); split("", ON); split("", OL); split("", OC); split("", OV); NS = 0; ANON = 0 }

function add_section(type, name, anon) {
	NS++; ST[NS] = type; SA[NS] = anon; NO[NS] = 0
	if (anon) { ANON++; SN[NS] = sprintf("cfg%02d%04x", NS, ANON) } else SN[NS] = name
	return NS
}

function find_section(name,    s) { for (s = 1; s <= NS; s++) if (SN[s] == name) return s; return 0 }
function find_option(s, name,    o) { for (o = 1; o <= NO[s]; o++) if (ON[s, o] == name) return o; return 0 }

function set_option(s, name, value, list,    o) {
	o = find_option(s, name)
	if (!o) { o = ++NO[s]; ON[s, o] = name; OL[s, o] = list; OC[s, o] = 0 }
	if (!list) { OL[s, o] = 0; OC[s, o] = 1; OV[s, o, 1] = value; return }
	OL[s, o] = 1; OC[s, o]++; OV[s, o, OC[s, o]] = value
}

function copy_option(s, o, t, p,    k) {
	ON[t, p] = ON[s, o]; OL[t, p] = OL[s, o]; OC[t, p] = OC[s, o]
	for (k = 1; k <= OC[s, o]; k++) OV[t, p, k] = OV[s, o, k]
}

function delete_option(s, o,    p) {
	for (p = o; p < NO[s]; p++) copy_option(s, p + 1, s, p)
	NO[s]--
}

function copy_section(s, t,    o) {
	ST[t] = ST[s]; SN[t] = SN[s]; SA[t] = SA[s]; NO[t] = NO[s]
	for (o = 1; o <= NO[s]; o++) copy_option(s, o, t, o)
}

function delete_section(s,    t) {
	for (t = s; t < NS; t++) copy_section(t + 1, t)
	NS--
}

function move_section(s, pos,    t, tmp) {
	if (pos < 1) pos = 1
	if (pos > NS) pos = NS
	copy_section(s, 0)
	if (pos < s) { for (t = s; t > pos; t--) copy_section(t - 1, t) }
	else { for (t = s; t < pos; t++) copy_section(t + 1, t) }
	copy_section(0, pos)
}

function read_file(path,    line, text, r) {
	text = ""; FILE_OK = 0
	while ((r = (getline line < path)) > 0) { text = text line "\n"; FILE_OK = 1 }
	if (r == 0) FILE_OK = 1
	close(path)
	return text
}

# Parses UCI text into the model; returns 0 (and sets PARSE_ERR) on an error.
function parse_into(text, pkg,    k, w, s, o) {
	clear_pkg(); s = 0
	if (!tokenize(text)) return 0
	for (k = 1; k <= TOK_N; k++) {
		w = TOK[k, 1]
		if (w == "package" || w == "p") { if (TOK[k, 2] != pkg) { PARSE_ERR = "package " TOK[k, 2] " where " pkg " was expected"; return 0 } continue }
		if (w == "config" || w == "c") {
			if (TOK_C[k] < 2 || !valid_type(TOK[k, 2])) { PARSE_ERR = "invalid character in type field"; return 0 }
			if (TOK_C[k] >= 3 && TOK[k, 3] != "") {
				if (!valid_name(TOK[k, 3])) { PARSE_ERR = "invalid character in name field"; return 0 }
				s = find_section(TOK[k, 3])
				if (!s) s = add_section(TOK[k, 2], TOK[k, 3], 0)
			} else s = add_section(TOK[k, 2], "", 1)
			continue
		}
		if (w == "option" || w == "o" || w == "list" || w == "l") {
			if (!s) { PARSE_ERR = "option/list command found before the first section"; return 0 }
			if (!valid_name(TOK[k, 2])) { PARSE_ERR = "invalid character in name field"; return 0 }
			set_option(s, TOK[k, 2], TOK[k, 3], (w == "list" || w == "l"))
			continue
		}
		PARSE_ERR = "invalid command"; return 0
	}
	return 1
}

function quote(v,    out, i, c) {
	out = "'"
	for (i = 1; i <= length(v); i++) { c = substr(v, i, 1); out = out (c == "'" ? "'\\''" : c) }
	return out "'"
}

# The export body (what /etc/config/PKG holds): a blank line, then each section.
function serialize(    s, o, k, out) {
	out = ""
	for (s = 1; s <= NS; s++) {
		out = out "\nconfig " ST[s] (SA[s] ? "" : " " quote(SN[s])) "\n"
		for (o = 1; o <= NO[s]; o++) {
			if (OL[s, o]) { for (k = 1; k <= OC[s, o]; k++) out = out "\tlist " ON[s, o] " " quote(OV[s, o, k]) "\n" }
			else out = out "\toption " ON[s, o] " " quote(OV[s, o, 1]) "\n"
		}
	}
	return out "\n"
}

function write_atomic(path, text,    tmp) {
	tmp = path ".standin-tmp"
	printf "%s", text > tmp
	close(tmp)
	system("mv -f '" tmp "' '" path "'")
}

function staged(pkg) { return SAVEDIR "/" pkg }

# Loads the package as uci sees it: the staged copy if there is one, else the config file. In a
# batch the package stays loaded from one command to the next (and is staged when the batch moves
# on to another package, commits, or ends), which stages the same result as saving each time.
function load(pkg,    text) {
	if (pkg !~ /^[A-Za-z0-9_-]+$/) return 0
	if (LOADED == pkg) return 1
	flush()
	text = read_file(staged(pkg))
	if (!FILE_OK) text = read_file(CONFDIR "/" pkg)
	if (!FILE_OK) return 0
	if (!parse_into(text, pkg)) { err("Parse error (" PARSE_ERR ")"); return 0 }
	LOADED = pkg
	return 1
}

function save() { DIRTY = 1 }

function flush() {
	if (LOADED != "" && DIRTY) { system("mkdir -p '" SAVEDIR "'"); write_atomic(staged(LOADED), serialize()) }
	LOADED = ""; DIRTY = 0
}

# "@type[N]" or a name -> section index (0 when there is none).
function resolve_section(ref,    type, n, s, count, want, idx) {
	if (substr(ref, 1, 1) != "@") return valid_name(ref) ? find_section(ref) : 0
	if (!match(ref, /\[-?[0-9]+\]$/)) return 0
	type = substr(ref, 2, RSTART - 2); want = substr(ref, RSTART + 1, RLENGTH - 2) + 0
	count = 0
	for (s = 1; s <= NS; s++) if (ST[s] == type) idx[count++] = s
	if (want < 0) want += count
	if (want < 0 || want >= count) return 0
	return idx[want]
}

# One command of a batch (or the command line): returns 0, or 1 after printing the error.
function run_cmd(argc, a,    cmd, spec, eq, path, value, parts, np, pkg, s, o, rc) {
	cmd = a[1]
	if (cmd == "commit" || cmd == "revert") {
		if (argc < 2) { err("Invalid argument"); return 1 }
		if (cmd == "commit") return do_commit(a[2])
		return do_revert(a[2])
	}
	if (cmd != "set" && cmd != "add_list" && cmd != "delete" && cmd != "del" && cmd != "reorder") { err("Unknown command " cmd); return 1 }
	if (argc != 2) { err("Invalid argument"); return 1 }
	spec = a[2]; eq = index(spec, "=")
	if (eq) { path = substr(spec, 1, eq - 1); value = substr(spec, eq + 1) } else { path = spec; value = "" }
	np = split(path, parts, ".")
	pkg = parts[1]
	if (!load(pkg)) { err("Entry not found"); return 1 }
	if (np < 2) { err("Invalid argument"); return 1 }
	s = resolve_section(parts[2])
	if (cmd == "set" && np == 2) {
		if (!eq || !valid_type(value)) { err("Invalid argument"); return 1 }
		if (s) ST[s] = value
		else if (substr(parts[2], 1, 1) == "@" || !valid_name(parts[2])) { err("Entry not found"); return 1 }
		else add_section(value, parts[2], 0)
		save(); return 0
	}
	if (!s) { err("Entry not found"); return 1 }
	if (cmd == "reorder") { if (np != 2 || value !~ /^[0-9]+$/) { err("Invalid argument"); return 1 } move_section(s, value + 1); save(); return 0 }
	if ((cmd == "delete" || cmd == "del") && np == 2) { delete_section(s); save(); return 0 }
	if (np != 3 || !valid_name(parts[3])) { err("Invalid argument"); return 1 }
	o = find_option(s, parts[3])
	if (cmd == "delete" || cmd == "del") { if (!o) { err("Entry not found"); return 1 } delete_option(s, o); save(); return 0 }
	if (!eq) { err("Invalid argument"); return 1 }
	if (cmd == "set") {
		if (value == "") { if (o) delete_option(s, o) }
		else set_option(s, parts[3], value, 0)
		save(); return 0
	}
	# add_list: a string option becomes a list holding it first
	if (o && !OL[s, o]) OL[s, o] = 1
	set_option(s, parts[3], value, 1)
	save(); return 0
}

function do_export(pkg) {
	if (!load(pkg)) { err("Entry not found"); return 1 }
	printf "package %s\n%s", pkg, serialize()
	return 0
}

function do_commit(pkg,    text) {
	flush()
	text = read_file(staged(pkg))
	if (!FILE_OK) { if (!load(pkg)) { err("Entry not found"); return 1 } return 0 }
	if (!parse_into(text, pkg)) { err("Parse error (" PARSE_ERR ")"); return 1 }
	write_atomic(CONFDIR "/" pkg, serialize())
	system("rm -f '" staged(pkg) "'")
	return 0
}

function do_revert(pkg) {
	if (pkg !~ /^[A-Za-z0-9_-]+$/) { err("Invalid argument"); return 1 }
	if (LOADED == pkg) { LOADED = ""; DIRTY = 0 }
	system("rm -f '" staged(pkg) "'")
	return 0
}

function do_import(pkg, input,    text) {
	if (pkg !~ /^[A-Za-z0-9_-]+$/) { err("Invalid argument"); return 1 }
	text = read_file(input)
	if (!parse_into(text, pkg)) { err("Parse error (" PARSE_ERR ")"); return 1 }
	write_atomic(CONFDIR "/" pkg, serialize())
	system("rm -f '" staged(pkg) "'")
	return 0
}

function do_batch(input,    text, k, m, a) {
	text = read_file(input)
	if (!tokenize(text)) { err("Parse error (" PARSE_ERR ")"); return 0 }
	# tokenize() is reused by load(): keep this batch's commands apart.
	for (k = 1; k <= TOK_N; k++) { BC[k] = TOK_C[k]; for (m = 1; m <= TOK_C[k]; m++) BT[k, m] = TOK[k, m] }
	BN = TOK_N
	for (k = 1; k <= BN; k++) {
		split("", a)
		for (m = 1; m <= BC[k]; m++) a[m] = BT[k, m]
		if (a[1] == "exit") break
		run_cmd(BC[k], a)
	}
	flush()
	return 0
}

function do_get(path,    parts, np, s, o, k, out) {
	np = split(path, parts, ".")
	if (!load(parts[1])) { err("Entry not found"); return 1 }
	s = resolve_section(parts[2])
	if (!s) { err("Entry not found"); return 1 }
	if (np == 2) { print ST[s]; return 0 }
	o = find_option(s, parts[3])
	if (!o) { err("Entry not found"); return 1 }
	out = ""
	for (k = 1; k <= OC[s, o]; k++) out = out (k > 1 ? " " : "") OV[s, o, k]
	print out
	return 0
}

BEGIN {
	CONFDIR = "/etc/config"; SAVEDIR = "/tmp/.uci"; quiet = 0
	i = 1
	while (i < ARGC && substr(ARGV[i], 1, 1) == "-") {
		if (ARGV[i] == "-q") quiet = 1
		else if (ARGV[i] == "-c") CONFDIR = ARGV[++i]
		else if (ARGV[i] == "-P") SAVEDIR = ARGV[++i]
		else { err("unknown option " ARGV[i]); exit 255 }
		i++
	}
	cmd = ARGV[i]; input = ENVIRON["UCI_STANDIN_INPUT"]
	if (cmd == "export") rc = do_export(ARGV[i + 1])
	else if (cmd == "batch") rc = do_batch(input)
	else if (cmd == "commit") rc = do_commit(ARGV[i + 1])
	else if (cmd == "revert") rc = do_revert(ARGV[i + 1])
	else if (cmd == "import") rc = do_import(ARGV[i + 1], input)
	else if (cmd == "get") rc = do_get(ARGV[i + 1])
	else if (cmd == "set" || cmd == "add_list" || cmd == "delete" || cmd == "del" || cmd == "reorder") {
		a[1] = cmd; a[2] = ARGV[i + 1]
		rc = run_cmd(ARGC - i, a)
		flush()
	}
	else { err("Unknown command " cmd); rc = 255 }
	exit rc
}
