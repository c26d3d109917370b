//! Tests of the query module as a whole: splitting, analysis, robustness and timing.

mod analyze;
mod lexer;
mod robust;
mod split;
mod timing;

/// Whether `text` still holds a string, number or other literal token.
fn has_literal(text: &str) -> bool {
    let mut lexer = super::lexer::Lexer::new(text);
    std::iter::from_fn(|| lexer.next_token()).any(|t| t.kind == super::lexer::TokenKind::Literal)
}
