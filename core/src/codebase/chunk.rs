//! Cutting source files into chunks a person would cite: functions, methods, classes, impls,
//! modules — found with tree-sitter for Rust, Python, JavaScript, TypeScript, Go, Java, C and
//! C++ — and line windows for everything else (and for the code between definitions).

use tree_sitter::{Language, Node, Parser};

/// Longest chunk, in lines; a longer definition is split (its members become chunks of their
/// own, or it is cut into windows).
const MAX_LINES: usize = 150;
/// Lines per window for text files and the code between definitions.
const WINDOW: usize = 60;

/// A language with a syntax-aware chunker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// `.rs`
    Rust,
    /// `.py`
    Python,
    /// `.js`, `.mjs`, `.cjs`, `.jsx`
    JavaScript,
    /// `.ts`, `.mts`, `.cts`
    TypeScript,
    /// `.tsx`
    Tsx,
    /// `.go`
    Go,
    /// `.java`
    Java,
    /// `.c`, `.h`
    C,
    /// `.cc`, `.cpp`, `.cxx`, `.hpp`, `.hh`, `.hxx`
    Cpp,
}

impl Lang {
    /// The language of a file, by extension.
    pub fn from_path(path: &str) -> Option<Self> {
        let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
        Some(match ext.as_str() {
            "rs" => Lang::Rust,
            "py" | "pyi" => Lang::Python,
            "js" | "mjs" | "cjs" | "jsx" => Lang::JavaScript,
            "ts" | "mts" | "cts" => Lang::TypeScript,
            "tsx" => Lang::Tsx,
            "go" => Lang::Go,
            "java" => Lang::Java,
            "c" | "h" => Lang::C,
            "cc" | "cpp" | "cxx" | "hpp" | "hh" | "hxx" | "ipp" => Lang::Cpp,
            _ => return None,
        })
    }

    fn grammar(self) -> Language {
        match self {
            Lang::Rust => tree_sitter_rust::LANGUAGE.into(),
            Lang::Python => tree_sitter_python::LANGUAGE.into(),
            Lang::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Lang::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Lang::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Lang::Go => tree_sitter_go::LANGUAGE.into(),
            Lang::Java => tree_sitter_java::LANGUAGE.into(),
            Lang::C => tree_sitter_c::LANGUAGE.into(),
            Lang::Cpp => tree_sitter_cpp::LANGUAGE.into(),
        }
    }

    /// Node kinds that make a chunk of their own.
    fn is_definition(self, kind: &str) -> bool {
        match self {
            Lang::Rust => matches!(
                kind,
                "function_item"
                    | "impl_item"
                    | "struct_item"
                    | "enum_item"
                    | "trait_item"
                    | "mod_item"
                    | "macro_definition"
                    | "union_item"
                    | "function_signature_item"
            ),
            Lang::Python => matches!(kind, "function_definition" | "class_definition" | "decorated_definition"),
            Lang::JavaScript | Lang::TypeScript | Lang::Tsx => matches!(
                kind,
                "function_declaration"
                    | "generator_function_declaration"
                    | "class_declaration"
                    | "method_definition"
                    | "interface_declaration"
                    | "type_alias_declaration"
                    | "enum_declaration"
                    | "abstract_class_declaration"
                    | "module"
                    | "internal_module"
            ),
            Lang::Go => matches!(kind, "function_declaration" | "method_declaration" | "type_declaration"),
            Lang::Java => matches!(
                kind,
                "class_declaration"
                    | "interface_declaration"
                    | "enum_declaration"
                    | "record_declaration"
                    | "method_declaration"
                    | "constructor_declaration"
                    | "annotation_type_declaration"
            ),
            Lang::C => {
                matches!(kind, "function_definition" | "struct_specifier" | "enum_specifier" | "union_specifier")
            }
            Lang::Cpp => matches!(
                kind,
                "function_definition"
                    | "class_specifier"
                    | "struct_specifier"
                    | "enum_specifier"
                    | "union_specifier"
                    | "namespace_definition"
                    | "template_declaration"
            ),
        }
    }
}

/// A piece of a file to index and cite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// First line, 1-based.
    pub start_line: usize,
    /// Last line, inclusive.
    pub end_line: usize,
    /// The definition's name (`Type::method` inside an impl or class), empty for windows.
    pub symbol: String,
    /// The node kind (`function_item`, …) or `lines`.
    pub kind: String,
}

/// Chunks of a file: by syntax where the language is known, else by line windows.
pub fn chunk_file(path: &str, text: &str) -> Vec<Chunk> {
    let lines = text.lines().count().max(1);
    let mut chunks = match Lang::from_path(path) {
        Some(lang) => syntax_chunks(lang, text),
        None => Vec::new(),
    };
    // The lines no definition covers (imports, constants, top-level code, plain text).
    let mut covered = vec![false; lines + 1];
    for c in &chunks {
        let end = c.end_line.min(lines);
        if c.start_line <= end {
            covered[c.start_line..=end].fill(true);
        }
    }
    let text_lines: Vec<&str> = text.lines().collect();
    let mut start = None;
    for line in 1..=lines + 1 {
        let free = covered.get(line).is_some_and(|c| !c) && line <= lines;
        match (free, start) {
            (true, None) => start = Some(line),
            (false, Some(s)) => {
                windows(&text_lines, s, line - 1, &mut chunks);
                start = None;
            }
            _ => {}
        }
    }
    chunks.sort_by_key(|c| (c.start_line, c.end_line));
    chunks
}

/// Line windows over `start..=end`, leaving out runs that are only blank lines.
fn windows(lines: &[&str], start: usize, end: usize, out: &mut Vec<Chunk>) {
    let mut s = start;
    while s <= end {
        let e = (s + WINDOW - 1).min(end);
        let has_text = (s..=e).any(|l| lines.get(l - 1).is_some_and(|t| !t.trim().is_empty()));
        if has_text {
            out.push(Chunk { start_line: s, end_line: e, symbol: String::new(), kind: "lines".into() });
        }
        s = e + 1;
    }
}

fn syntax_chunks(lang: Lang, text: &str) -> Vec<Chunk> {
    let mut parser = Parser::new();
    if parser.set_language(&lang.grammar()).is_err() {
        return Vec::new();
    }
    let Some(tree) = parser.parse(text, None) else { return Vec::new() };
    let mut out = Vec::new();
    visit(lang, tree.root_node(), text.as_bytes(), "", &mut out);
    out
}

fn visit(lang: Lang, node: Node<'_>, src: &[u8], parent: &str, out: &mut Vec<Chunk>) {
    let mut cursor = node.walk();
    for child in node.named_children(&mut cursor) {
        if lang.is_definition(child.kind()) {
            let name = symbol_name(lang, child, src);
            let symbol = match (parent.is_empty(), name.is_empty()) {
                (false, false) => format!("{parent}::{name}"),
                (false, true) => parent.to_owned(),
                _ => name,
            };
            let start = leading_comments_start(child) + 1;
            let end = child.end_position().row + 1;
            if end - start < MAX_LINES {
                out.push(Chunk { start_line: start, end_line: end, symbol, kind: child.kind().to_owned() });
                continue;
            }
            // Too long: its members become chunks; what is left is cut into windows.
            let before = out.len();
            visit(lang, child, src, &symbol, out);
            if out.len() == before {
                let mut s = start;
                while s <= end {
                    let e = (s + MAX_LINES - 1).min(end);
                    out.push(Chunk {
                        start_line: s,
                        end_line: e,
                        symbol: symbol.clone(),
                        kind: child.kind().to_owned(),
                    });
                    s = e + 1;
                }
            }
        } else if child.named_child_count() > 0 {
            // Definitions nest inside blocks, export statements, declaration lists, namespaces.
            visit(lang, child, src, parent, out);
        }
    }
}

/// The first row of the comments and attributes directly above a definition (doc comments,
/// `#[derive]`, decorators), which belong to it; the definition's own row when there are none.
fn leading_comments_start(node: Node<'_>) -> usize {
    let mut start = node.start_position().row;
    let mut current = node.prev_named_sibling();
    while let Some(prev) = current {
        let kind = prev.kind();
        let attached =
            kind.contains("comment") || kind.contains("attribute") || kind == "decorator" || kind == "annotation";
        if !attached || prev.end_position().row + 1 < start {
            break;
        }
        start = prev.start_position().row;
        current = prev.prev_named_sibling();
    }
    start
}

/// The name a person would search for.
fn symbol_name(lang: Lang, node: Node<'_>, src: &[u8]) -> String {
    let text = |n: Node<'_>| n.utf8_text(src).unwrap_or_default().to_owned();
    match node.kind() {
        "impl_item" => {
            let ty = node.child_by_field_name("type").map(text).unwrap_or_default();
            match node.child_by_field_name("trait").map(text) {
                Some(tr) => format!("impl {tr} for {ty}"),
                None => format!("impl {ty}"),
            }
        }
        "decorated_definition" | "template_declaration" | "type_declaration" => {
            let mut cursor = node.walk();
            let inner =
                node.named_children(&mut cursor).find(|c| lang.is_definition(c.kind()) || c.kind() == "type_spec");
            match inner {
                Some(inner) => symbol_name(lang, inner, src),
                None => String::new(),
            }
        }
        _ => {
            if let Some(name) = node.child_by_field_name("name") {
                return text(name);
            }
            // C and C++ functions: the name is inside the declarator.
            let mut current = node.child_by_field_name("declarator");
            while let Some(d) = current {
                if d.kind().contains("identifier") || d.kind() == "operator_name" || d.kind() == "destructor_name" {
                    return text(d);
                }
                current = d.child_by_field_name("declarator").or_else(|| d.child_by_field_name("name"));
            }
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(path: &str, text: &str) -> Vec<(String, usize, usize)> {
        chunk_file(path, text)
            .into_iter()
            .filter(|c| !c.symbol.is_empty())
            .map(|c| (c.symbol, c.start_line, c.end_line))
            .collect()
    }

    #[test]
    fn rust_functions_impls_and_their_methods_are_chunks() {
        let src = "use std::fmt;\n\nstruct Point { x: i32 }\n\nimpl Point {\n    fn norm(&self) -> i32 {\n        self.x\n    }\n}\n\nfn main() {}\n";
        assert_eq!(
            names("a.rs", src),
            vec![("Point".into(), 3, 3), ("impl Point".into(), 5, 9), ("main".into(), 11, 11)]
        );
        let chunks = chunk_file("a.rs", src);
        assert_eq!(chunks[0].kind, "lines", "the use line is covered by a window");
    }

    #[test]
    fn each_supported_language_finds_its_definitions() {
        let cases = [
            ("m.py", "import os\n\nclass Parser:\n    def parse(self):\n        return 1\n\n@cache\ndef load():\n    pass\n", vec!["Parser", "load"]),
            ("m.js", "export function render(x) {\n  return x;\n}\nclass View {\n  draw() {}\n}\n", vec!["render", "View"]),
            ("m.ts", "interface Shape { area(): number }\nexport class Circle implements Shape {\n  area() { return 1; }\n}\n", vec!["Shape", "Circle"]),
            ("m.go", "package m\n\nfunc Add(a, b int) int {\n\treturn a + b\n}\n\ntype Point struct{ X int }\n", vec!["Add", "Point"]),
            ("M.java", "class Greeter {\n  void greet() {}\n}\n", vec!["Greeter"]),
            ("m.c", "#include <stdio.h>\nstatic int add(int a, int b) {\n  return a + b;\n}\n", vec!["add"]),
            ("m.cpp", "namespace app {\nint twice(int x) { return 2 * x; }\n}\n", vec!["app"]),
        ];
        for (path, src, expected) in cases {
            let found: Vec<String> = names(path, src).into_iter().map(|(n, _, _)| n).collect();
            assert_eq!(found, expected, "{path}");
        }
    }

    #[test]
    fn doc_comments_and_attributes_belong_to_their_definition() {
        let src = "use x;\n\n/// Adds.\n/// Really.\n#[inline]\nfn add() {}\n";
        assert_eq!(names("a.rs", src), vec![("add".into(), 3, 6)]);
    }

    #[test]
    fn long_definitions_are_split_and_text_files_are_windowed() {
        let body: String = (0..200).map(|i| format!("    fn m{i}(&self) {{}}\n")).collect();
        let src = format!("impl Big {{\n{body}}}\n");
        let chunks = chunk_file("big.rs", &src);
        assert!(chunks.iter().any(|c| c.symbol == "impl Big::m0"), "members become chunks");
        assert!(chunks.iter().all(|c| c.end_line - c.start_line < MAX_LINES));

        let text: String = (0..130).map(|i| format!("line {i}\n")).collect();
        let windows = chunk_file("notes.txt", &text);
        assert_eq!(windows.len(), 3);
        assert_eq!((windows[2].start_line, windows[2].end_line), (121, 130));
    }
}
