//! PromQL query templates: `{{namespace}}`, `{{name}}` and `{{policy}}`
//! replaced by the policy's names, escaped so that no name can change the
//! query.
//!
//! Safety comes from two independent layers:
//! 1. every placeholder must sit inside a PromQL string literal, and its value
//!    is escaped for that kind of literal (a value can never close the string);
//! 2. [`render`] also checks that the names are valid Kubernetes names.
//!
//! [`render_unchecked`] is layer 1 alone; it exists so that tests can show that
//! escaping is sufficient by itself.

use super::MetricsError;

/// The names a template may refer to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TemplateVars {
    /// `{{namespace}}`: the namespace of the policy and of its target.
    pub namespace: String,
    /// `{{name}}`: the name of the target workload.
    pub name: String,
    /// `{{policy}}`: the name of the ConcurrencyPolicy.
    pub policy: String,
}

impl TemplateVars {
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        policy: impl Into<String>,
    ) -> Self {
        TemplateVars {
            namespace: namespace.into(),
            name: name.into(),
            policy: policy.into(),
        }
    }

    /// Checks the names against Kubernetes' rules: the namespace is a DNS
    /// label (RFC 1123), the target and policy names are DNS subdomains.
    pub fn validate(&self) -> Result<(), MetricsError> {
        check_name("namespace", &self.namespace, MAX_DNS_LABEL, is_dns_label)?;
        check_name("name", &self.name, MAX_DNS_SUBDOMAIN, is_dns_subdomain)?;
        check_name("policy", &self.policy, MAX_DNS_SUBDOMAIN, is_dns_subdomain)
    }

    fn get(&self, placeholder: &str) -> Option<&str> {
        match placeholder {
            "namespace" => Some(&self.namespace),
            "name" => Some(&self.name),
            "policy" => Some(&self.policy),
            _ => None,
        }
    }
}

/// Validates the names ([`TemplateVars::validate`]) and renders the template
/// ([`render_unchecked`]). This is what the controller calls.
pub fn render(template: &str, vars: &TemplateVars) -> Result<String, MetricsError> {
    vars.validate()?;
    render_unchecked(template, vars)
}

/// Replaces each `{{namespace}}`, `{{name}}` and `{{policy}}` (spaces inside
/// the braces allowed) with its value escaped for the PromQL string literal
/// the placeholder sits in. Errors: an unknown or unclosed placeholder, a
/// placeholder outside a string literal or in a comment, and a value that a
/// raw (backtick) string cannot hold. A literal `{{` anywhere in the template
/// is read as the start of a placeholder.
pub fn render_unchecked(template: &str, vars: &TemplateVars) -> Result<String, MetricsError> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut context = Context::Code;
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("{{") {
            let (placeholder, after) = split_placeholder(rest)?;
            let value = vars.get(placeholder).ok_or_else(|| {
                MetricsError::Template(format!(
                    "unknown placeholder {{{{{placeholder}}}}}; known: {{{{namespace}}}}, {{{{name}}}}, {{{{policy}}}}"
                ))
            })?;
            context.substitute(placeholder, value, &mut out)?;
            rest = after;
            continue;
        }
        let len = c.len_utf8();
        // An escaped character inside a quoted string is copied as is: it can
        // neither close the string nor start a placeholder.
        if c == '\\' && matches!(context, Context::DoubleQuoted | Context::SingleQuoted) {
            let next_len = rest[len..].chars().next().map_or(0, char::len_utf8);
            out.push_str(&rest[..len + next_len]);
            rest = &rest[len + next_len..];
            continue;
        }
        context = context.next(c);
        out.push(c);
        rest = &rest[len..];
    }
    Ok(out)
}

/// Where the lexer is in the PromQL text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Context {
    Code,
    DoubleQuoted,
    SingleQuoted,
    Backtick,
    Comment,
}

impl Context {
    fn next(self, c: char) -> Context {
        match (self, c) {
            (Context::Code, '"') => Context::DoubleQuoted,
            (Context::Code, '\'') => Context::SingleQuoted,
            (Context::Code, '`') => Context::Backtick,
            (Context::Code, '#') => Context::Comment,
            (Context::DoubleQuoted, '"')
            | (Context::SingleQuoted, '\'')
            | (Context::Backtick, '`')
            | (Context::Comment, '\n') => Context::Code,
            (context, _) => context,
        }
    }

    fn substitute(
        self,
        placeholder: &str,
        value: &str,
        out: &mut String,
    ) -> Result<(), MetricsError> {
        match self {
            Context::DoubleQuoted => {
                escape_into(value, '"', out);
                Ok(())
            }
            Context::SingleQuoted => {
                escape_into(value, '\'', out);
                Ok(())
            }
            // A raw string has no escapes: only a value without a backtick fits.
            Context::Backtick if !value.contains('`') => {
                out.push_str(value);
                Ok(())
            }
            Context::Backtick => Err(MetricsError::Template(format!(
                "the value of {{{{{placeholder}}}}} contains a backtick and cannot go in a raw string; use a double-quoted string"
            ))),
            Context::Code | Context::Comment => Err(MetricsError::Template(format!(
                "{{{{{placeholder}}}}} must be inside a quoted label value, e.g. namespace=\"{{{{namespace}}}}\""
            ))),
        }
    }
}

/// `rest` starts with `{{`: returns the trimmed placeholder name and the text
/// after its `}}`.
fn split_placeholder(rest: &str) -> Result<(&str, &str), MetricsError> {
    let inner = &rest[2..];
    let end = inner
        .find("}}")
        .ok_or_else(|| MetricsError::Template("a '{{' has no matching '}}'".to_string()))?;
    Ok((inner[..end].trim(), &inner[end + 2..]))
}

/// Escapes `value` for a PromQL string literal opened with `quote` (`"` or
/// `'`): the backslash, the quote, and every control character (newline
/// included) become escape sequences, so the value always ends inside the
/// literal. PromQL only accepts escaping the literal's own quote character.
pub fn escape_into(value: &str, quote: char, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            // Non-ASCII control characters (C1, U+0080..U+009F) as \u escapes.
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

/// Escapes a value for a PromQL double-quoted string, e.g. a label value.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    escape_into(value, '"', &mut out);
    out
}

// Kubernetes' limits for names (k8s.io/apimachinery validation).
const MAX_DNS_LABEL: usize = 63;
const MAX_DNS_SUBDOMAIN: usize = 253;

fn check_name(
    what: &str,
    value: &str,
    max: usize,
    valid: fn(&str) -> bool,
) -> Result<(), MetricsError> {
    if value.len() <= max && valid(value) {
        Ok(())
    } else {
        // Debug formatting keeps a hostile value on one line in logs.
        Err(MetricsError::Template(format!(
            "{what} {value:?} is not a valid Kubernetes name (lowercase letters, digits, '-' and '.', at most {max} characters)"
        )))
    }
}

/// RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            s.len() <= MAX_DNS_LABEL
                && first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        }
        _ => false,
    }
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= MAX_DNS_SUBDOMAIN && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(namespace: &str, name: &str, policy: &str) -> TemplateVars {
        TemplateVars::new(namespace, name, policy)
    }

    #[test]
    fn substitutes_all_placeholders() {
        let q = render(
            r#"sum(in_flight{namespace="{{namespace}}", deployment="{{ name }}", p='{{policy}}'})"#,
            &vars("shop", "checkout", "checkout-cpol"),
        )
        .unwrap();
        assert_eq!(
            q,
            r#"sum(in_flight{namespace="shop", deployment="checkout", p='checkout-cpol'})"#
        );
    }

    #[test]
    fn a_template_without_placeholders_is_unchanged() {
        let t = r#"sum(rate(http_requests_total{job="api"}[1m])) * 0.25"#;
        assert_eq!(render(t, &vars("a", "b", "c")).unwrap(), t);
    }

    #[test]
    fn unknown_and_unclosed_placeholders_are_errors() {
        let v = vars("a", "b", "c");
        let err = render(r#"x{a="{{nmespace}}"}"#, &v).unwrap_err();
        assert!(
            matches!(&err, MetricsError::Template(m) if m.contains("{{nmespace}}")),
            "{err}"
        );
        let err = render(r#"x{a="{{namespace"}"#, &v).unwrap_err();
        assert!(
            matches!(&err, MetricsError::Template(m) if m.contains("no matching")),
            "{err}"
        );
        assert_eq!(err.metric_label(), "template");
    }

    #[test]
    fn placeholders_outside_strings_or_in_comments_are_refused() {
        let v = vars("a", "b", "c");
        for t in [
            "x{namespace={{namespace}}}",
            "sum(x) # {{name}}",
            "{{policy}}",
        ] {
            let err = render(t, &v).unwrap_err();
            assert!(
                matches!(&err, MetricsError::Template(m) if m.contains("inside a quoted")),
                "{t}: {err}"
            );
        }
        // A '#' inside a string does not start a comment, and a comment ends
        // at the newline.
        assert_eq!(
            render(
                "x{a=\"#\", b=\"{{name}}\"} # note\n + y{c=\"{{name}}\"}",
                &v
            )
            .unwrap(),
            "x{a=\"#\", b=\"b\"} # note\n + y{c=\"b\"}"
        );
    }

    #[test]
    fn escaped_quotes_in_the_template_do_not_end_the_string() {
        let v = vars("ns", "b", "c");
        assert_eq!(
            render(r#"x{a="q\"{{namespace}}"}"#, &v).unwrap(),
            r#"x{a="q\"ns"}"#
        );
        // After the escaped quote we are still inside the string, so a
        // placeholder after a closing quote is outside and refused.
        assert!(render(r#"x{a="q\"" , b={{namespace}}}"#, &v).is_err());
    }

    const HOSTILE: &[&str] = &[
        r#"a"}) or vector(1) #"#,
        "a\"}) or vector(1)\n#",
        r#"a\"}) or vector(1) #"#,
        r"a\",
        "a'}) or vector(1) #",
        "a`}) or vector(1) #",
        "line\nbreak\r\ttab\u{0}nul\u{7f}del\u{85}nel",
    ];

    /// Reads a PromQL double- or single-quoted literal starting at `s[0]`,
    /// the way PromQL's lexer does; returns (decoded value, rest after it).
    fn read_literal(s: &str) -> (String, &str) {
        let quote = s.chars().next().unwrap();
        let mut value = String::new();
        let mut chars = s[1..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    let (_, e) = chars.next().unwrap();
                    match e {
                        'n' => value.push('\n'),
                        'r' => value.push('\r'),
                        't' => value.push('\t'),
                        '\\' => value.push('\\'),
                        'x' => {
                            let hex: String = (0..2).map(|_| chars.next().unwrap().1).collect();
                            value.push(char::from(u8::from_str_radix(&hex, 16).unwrap()));
                        }
                        'u' => {
                            let hex: String = (0..4).map(|_| chars.next().unwrap().1).collect();
                            value.push(
                                char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap(),
                            );
                        }
                        e if e == quote => value.push(e),
                        e => panic!("PromQL would reject the escape \\{e} in {s:?}"),
                    }
                }
                '\n' => panic!("raw newline inside a PromQL string: {s:?}"),
                c if c == quote => return (value, &s[1 + i + 1..]),
                c => value.push(c),
            }
        }
        panic!("unterminated literal in {s:?}")
    }

    #[test]
    fn hostile_names_stay_inside_their_double_quoted_literal() {
        for hostile in HOSTILE {
            let q = render_unchecked(r#"sum(x{ns="{{namespace}}"})"#, &vars(hostile, "b", "c"))
                .unwrap();
            let literal_start = q.find('"').unwrap();
            let (decoded, rest) = read_literal(&q[literal_start..]);
            assert_eq!(&decoded, hostile, "round trip of {q}");
            assert_eq!(rest, "})", "the query after the literal is untouched: {q}");
        }
    }

    #[test]
    fn hostile_names_stay_inside_their_single_quoted_literal() {
        for hostile in HOSTILE {
            let q = render_unchecked("sum(x{ns='{{name}}'})", &vars("a", hostile, "c")).unwrap();
            let literal_start = q.find('\'').unwrap();
            let (decoded, rest) = read_literal(&q[literal_start..]);
            assert_eq!(&decoded, hostile, "round trip of {q}");
            assert_eq!(rest, "})");
        }
    }

    #[test]
    fn a_backtick_cannot_enter_a_raw_string() {
        let err =
            render_unchecked("x{a=`{{policy}}`}", &vars("a", "b", "c`} or vector(1)")).unwrap_err();
        assert!(
            matches!(&err, MetricsError::Template(m) if m.contains("backtick")),
            "{err}"
        );
        // Other hostile characters are inert in a raw string: nothing ends it
        // but a backtick.
        assert_eq!(
            render_unchecked("x{a=`{{policy}}`}", &vars("a", "b", r#"c"}\'"#)).unwrap(),
            r#"x{a=`c"}\'`}"#
        );
    }

    #[test]
    fn render_refuses_names_that_kubernetes_would_refuse() {
        for hostile in HOSTILE {
            assert!(render(r#"x{a="{{namespace}}"}"#, &vars(hostile, "b", "c")).is_err());
            assert!(render(r#"x{a="{{name}}"}"#, &vars("a", hostile, "c")).is_err());
            assert!(render(r#"x{a="{{policy}}"}"#, &vars("a", "b", hostile)).is_err());
        }
        let long_label = "a".repeat(64);
        for bad_namespace in ["", "A", "-a", "a-", "a.b", "a_b", long_label.as_str()] {
            let err = vars(bad_namespace, "b", "c").validate().unwrap_err();
            assert!(
                matches!(&err, MetricsError::Template(m) if m.starts_with("namespace")),
                "{err}"
            );
        }
        for bad_name in ["", "a..b", ".a", "a.", "Checkout", "a/b"] {
            assert!(vars("a", bad_name, "c").validate().is_err(), "{bad_name:?}");
        }
    }

    #[test]
    fn render_accepts_valid_kubernetes_names() {
        let max_label = "a".repeat(63);
        let long_subdomain = [max_label.as_str(); 3].join(".");
        for (ns, name) in [
            ("default", "checkout"),
            ("a", "web.v2"),
            ("team-1", "a-b-c.d-e"),
            (max_label.as_str(), long_subdomain.as_str()),
        ] {
            vars(ns, name, name).validate().unwrap();
        }
        let too_long = [max_label.as_str(); 4].join(".");
        assert!(too_long.len() > 253);
        assert!(vars("a", &too_long, "c").validate().is_err());
    }

    #[test]
    fn escape_label_value_escapes_backslash_quote_and_newline() {
        assert_eq!(escape_label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label_value("a\nb"), r"a\nb");
        assert_eq!(escape_label_value("it's"), "it's");
        assert_eq!(escape_label_value("ünïcode"), "ünïcode");
    }
}
