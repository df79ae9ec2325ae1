//! The three tools: their JSON Schemas (what `tools/list` shows) and what they do.
//! A tool answers `Ok(text)` or `Err(message)`; the MCP layer turns `Err` into an `isError` result so
//! the model sees what was wrong with its arguments.

use serde_json::{Map, Value, json};
use std::collections::HashMap;

pub const MAX_REPEAT_TIMES: i64 = 100;
pub const MAX_REPEAT_OUTPUT_CHARS: usize = 100_000;
pub const DEFAULT_TOP_N: i64 = 5;
pub const MAX_TOP_N: i64 = 100;

/// The tool definitions for `tools/list`, in a stable order.
pub fn definitions() -> Value {
    json!([
        {
            "name": "repeat",
            "title": "Repeat text",
            "description": format!(
                "Repeat a text a number of times (1 to {}), joined by an optional separator. \
                 The result is at most {} characters.", MAX_REPEAT_TIMES, MAX_REPEAT_OUTPUT_CHARS),
            "inputSchema": {
                "type": "object",
                "properties": {
                    "text": {"type": "string", "description": "The text to repeat."},
                    "times": {"type": "integer", "minimum": 1, "maximum": MAX_REPEAT_TIMES,
                              "description": "How many copies."},
                    "separator": {"type": "string", "default": "",
                                  "description": "Put between copies (default: nothing)."}
                },
                "required": ["text", "times"],
                "additionalProperties": false
            },
            "annotations": {"readOnlyHint": true, "idempotentHint": true, "openWorldHint": false}
        },
        {
            "name": "word_count",
            "title": "Count words",
            "description": "Count the words, lines and characters of a text. Answers JSON: \
                            {\"words\": n, \"lines\": n, \"characters\": n}.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "text": {"type": "string", "description": "The text to count."}
                },
                "required": ["text"],
                "additionalProperties": false
            },
            "annotations": {"readOnlyHint": true, "idempotentHint": true, "openWorldHint": false}
        },
        {
            "name": "extract_keywords",
            "title": "Extract keywords",
            "description": "The most frequent words of a text, leaving out common English stop words. \
                            Answers JSON: {\"keywords\": [{\"word\": w, \"count\": n}, ...]}, most frequent \
                            first, ties in alphabetical order.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "text": {"type": "string", "description": "The text to analyse."},
                    "top_n": {"type": "integer", "minimum": 1, "maximum": MAX_TOP_N,
                              "default": DEFAULT_TOP_N, "description": "How many keywords at most."}
                },
                "required": ["text"],
                "additionalProperties": false
            },
            "annotations": {"readOnlyHint": true, "idempotentHint": true, "openWorldHint": false}
        }
    ])
}

/// Run tool `name`. `None` when there is no such tool.
pub fn call(name: &str, arguments: &Map<String, Value>) -> Option<Result<String, String>> {
    let outcome = match name {
        "repeat" => repeat(arguments),
        "word_count" => word_count(arguments),
        "extract_keywords" => extract_keywords(arguments),
        _ => return None,
    };
    Some(outcome)
}

fn check_known(arguments: &Map<String, Value>, known: &[&str]) -> Result<(), String> {
    let mut unknown: Vec<&str> =
        arguments.keys().map(|k| k.as_str()).filter(|k| !known.contains(k)).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort_unstable();
    Err(format!("unknown argument(s): {}; expected: {}", unknown.join(", "), known.join(", ")))
}

fn required_string<'a>(arguments: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    match arguments.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("argument '{}' must be a string", name)),
        None => Err(format!("missing required argument '{}' (a string)", name)),
    }
}

/// An integer argument within `min..=max`; `default` when absent (`None` makes it required).
fn integer(
    arguments: &Map<String, Value>,
    name: &str,
    min: i64,
    max: i64,
    default: Option<i64>,
) -> Result<i64, String> {
    let value = match arguments.get(name) {
        None | Some(Value::Null) => {
            return default.ok_or_else(|| format!("missing required argument '{}' (an integer)", name));
        }
        Some(v) => v,
    };
    let n = match (value.as_i64(), value.as_f64()) {
        (Some(n), _) => n,
        // 3.0 is an integer in JSON Schema.
        (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => f as i64,
        _ => return Err(format!("argument '{}' must be an integer", name)),
    };
    if n < min || n > max {
        return Err(format!("argument '{}' must be between {} and {}, got {}", name, min, max, n));
    }
    Ok(n)
}

fn repeat(arguments: &Map<String, Value>) -> Result<String, String> {
    check_known(arguments, &["text", "times", "separator"])?;
    let text = required_string(arguments, "text")?;
    let times = integer(arguments, "times", 1, MAX_REPEAT_TIMES, None)? as usize;
    let separator = match arguments.get("separator") {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err("argument 'separator' must be a string".to_string()),
    };
    let size = text.chars().count() * times + separator.chars().count() * (times - 1);
    if size > MAX_REPEAT_OUTPUT_CHARS {
        return Err(format!(
            "the result would be {} characters; the limit is {}",
            size, MAX_REPEAT_OUTPUT_CHARS
        ));
    }
    Ok(vec![text; times].join(separator))
}

/// Counts for a text: words are runs of non-whitespace, lines as an editor numbers them (a trailing
/// newline does not start a new line), characters are Unicode scalar values.
pub fn counts(text: &str) -> (usize, usize, usize) {
    (text.split_whitespace().count(), text.lines().count(), text.chars().count())
}

fn word_count(arguments: &Map<String, Value>) -> Result<String, String> {
    check_known(arguments, &["text"])?;
    let (words, lines, characters) = counts(required_string(arguments, "text")?);
    Ok(json!({"words": words, "lines": lines, "characters": characters}).to_string())
}

#[rustfmt::skip]
const STOP_WORDS: &[&str] = &[
    "a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any", "are",
    "aren't", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but",
    "by", "can", "can't", "cannot", "could", "couldn't", "did", "didn't", "do", "does", "doesn't", "doing",
    "don't", "down", "during", "each", "even", "ever", "every", "few", "for", "from", "further", "get",
    "gets", "got", "had", "hadn't", "has", "hasn't", "have", "haven't", "having", "he", "he'd", "he'll",
    "he's", "her", "here", "here's", "hers", "herself", "him", "himself", "his", "how", "how's", "however",
    "i", "i'd", "i'll", "i'm", "i've", "if", "in", "into", "is", "isn't", "it", "it's", "its", "itself",
    "just", "let's", "like", "many", "may", "me", "might", "more", "most", "much", "must", "mustn't", "my",
    "myself", "no", "nor", "not", "now", "of", "off", "on", "once", "one", "only", "or", "other", "ought",
    "our", "ours", "ourselves", "out", "over", "own", "same", "shall", "shan't", "she", "she'd", "she'll",
    "she's", "should", "shouldn't", "so", "some", "such", "than", "that", "that's", "the", "their",
    "theirs", "them", "themselves", "then", "there", "there's", "these", "they", "they'd", "they'll",
    "they're", "they've", "this", "those", "though", "through", "to", "too", "under", "until", "up",
    "upon", "us", "very", "was", "wasn't", "we", "we'd", "we'll", "we're", "we've", "were", "weren't",
    "what", "what's", "when", "when's", "where", "where's", "whether", "which", "while", "who", "who's",
    "whom", "whose", "why", "why's", "will", "with", "within", "without", "won't", "would", "wouldn't",
    "yet", "you", "you'd", "you'll", "you're", "you've", "your", "yours", "yourself", "yourselves",
];

/// Lower-cased words of a text: runs of letters and digits, with inner apostrophes kept ("don't").
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let flush = |current: &mut String, out: &mut Vec<String>| {
        let word = current.trim_matches('\'');
        if !word.is_empty() {
            out.push(word.to_string());
        }
        current.clear();
    };
    for c in text.chars() {
        if c.is_alphanumeric() {
            current.extend(c.to_lowercase());
        } else if c == '\'' || c == '\u{2019}' {
            current.push('\'');
        } else {
            flush(&mut current, &mut out);
        }
    }
    flush(&mut current, &mut out);
    out
}

/// The `top_n` most frequent keywords: no stop words, no single characters, no bare numbers.
pub fn keywords(text: &str, top_n: usize) -> Vec<(String, usize)> {
    let mut frequency: HashMap<String, usize> = HashMap::new();
    for word in words(text) {
        let is_number = word.chars().all(|c| c.is_numeric());
        if word.chars().count() < 2 || is_number || STOP_WORDS.contains(&word.as_str()) {
            continue;
        }
        *frequency.entry(word).or_insert(0) += 1;
    }
    let mut ranked: Vec<(String, usize)> = frequency.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(top_n);
    ranked
}

fn extract_keywords(arguments: &Map<String, Value>) -> Result<String, String> {
    check_known(arguments, &["text", "top_n"])?;
    let text = required_string(arguments, "text")?;
    let top_n = integer(arguments, "top_n", 1, MAX_TOP_N, Some(DEFAULT_TOP_N))? as usize;
    let keywords: Vec<Value> = keywords(text, top_n)
        .into_iter()
        .map(|(word, count)| json!({"word": word, "count": count}))
        .collect();
    Ok(json!({ "keywords": keywords }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn run(name: &str, value: Value) -> Result<String, String> {
        call(name, &args(value)).expect("known tool")
    }

    #[test]
    fn lists_three_tools_with_object_schemas() {
        let tools = definitions();
        let names: Vec<&str> =
            tools.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, vec!["repeat", "word_count", "extract_keywords"]);
        for tool in tools.as_array().unwrap() {
            assert_eq!(tool["inputSchema"]["type"], "object");
            assert!(tool["inputSchema"]["required"].as_array().unwrap().contains(&json!("text")));
        }
    }

    #[test]
    fn repeat_joins_copies() {
        assert_eq!(run("repeat", json!({"text": "ab", "times": 3})).unwrap(), "ababab");
        assert_eq!(run("repeat", json!({"text": "hi", "times": 3, "separator": " "})).unwrap(), "hi hi hi");
        assert_eq!(run("repeat", json!({"text": "x", "times": 2.0})).unwrap(), "xx");
    }

    #[test]
    fn repeat_is_bounded() {
        assert!(run("repeat", json!({"text": "a", "times": 0})).unwrap_err().contains("between 1 and 100"));
        assert!(run("repeat", json!({"text": "a", "times": 101})).is_err());
        assert!(run("repeat", json!({"text": "a", "times": 1.5})).unwrap_err().contains("integer"));
        let long = "a".repeat(MAX_REPEAT_OUTPUT_CHARS / 10 + 1);
        assert!(run("repeat", json!({"text": long, "times": 10})).unwrap_err().contains("limit"));
    }

    #[test]
    fn bad_arguments_are_explained() {
        assert!(run("repeat", json!({"times": 2})).unwrap_err().contains("'text'"));
        assert!(run("repeat", json!({"text": "a"})).unwrap_err().contains("'times'"));
        assert!(run("word_count", json!({"text": 5})).unwrap_err().contains("must be a string"));
        assert!(run("word_count", json!({"text": "a", "extra": 1})).unwrap_err().contains("extra"));
        assert!(call("nope", &Map::new()).is_none());
    }

    #[test]
    fn word_count_counts_words_lines_and_characters() {
        let result: Value =
            serde_json::from_str(&run("word_count", json!({"text": "hello  world\nnaïve café\n"})).unwrap())
                .unwrap();
        assert_eq!(result, json!({"words": 4, "lines": 2, "characters": 24}));
        assert_eq!(counts(""), (0, 0, 0));
        assert_eq!(counts("one"), (1, 1, 3));
    }

    #[test]
    fn keywords_skip_stop_words_and_rank_by_frequency() {
        let text = "The Rust compiler checks Rust code. The compiler is fast; rust is safe, and it's 2024!";
        assert_eq!(
            keywords(text, 3),
            vec![("rust".to_string(), 3), ("compiler".to_string(), 2), ("checks".to_string(), 1)]
        );
        let result: Value =
            serde_json::from_str(&run("extract_keywords", json!({"text": text, "top_n": 1})).unwrap())
                .unwrap();
        assert_eq!(result, json!({"keywords": [{"word": "rust", "count": 3}]}));
        assert!(run("extract_keywords", json!({"text": text, "top_n": 0})).is_err());
        assert_eq!(keywords("the and of", 5), vec![]);
    }

    #[test]
    fn words_keep_inner_apostrophes() {
        assert_eq!(words("Don't 'quote' me—ok"), vec!["don't", "quote", "me", "ok"]);
    }
}
