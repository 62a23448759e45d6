//! Stop sequences: text is passed on as it comes, except a tail that could be the start of a
//! stop string, which waits for the next piece; at a stop string the reply ends, the stop
//! string itself not included (as OpenAI does).

pub(crate) struct StopScan {
    stops: Vec<String>,
    held: String,
    matched: Option<String>,
}

impl StopScan {
    pub fn new(stops: Vec<String>) -> Self {
        Self { stops, held: String::new(), matched: None }
    }

    /// Whether a stop string was met (nothing more is passed on).
    pub fn stopped(&self) -> bool {
        self.matched.is_some()
    }

    /// The stop string that was met, if one was.
    pub fn matched(&self) -> Option<&str> {
        self.matched.as_deref()
    }

    /// Takes the next piece of the reply; returns the text that can be passed on now.
    pub fn push(&mut self, piece: &str) -> String {
        if self.stopped() {
            return String::new();
        }
        if self.stops.is_empty() {
            return piece.to_owned();
        }
        self.held.push_str(piece);
        if let Some((at, stop)) =
            self.stops.iter().filter_map(|s| self.held.find(s.as_str()).map(|at| (at, s))).min_by_key(|(at, _)| *at)
        {
            self.matched = Some(stop.clone());
            let out = self.held[..at].to_owned();
            self.held.clear();
            return out;
        }
        let keep = self.stops.iter().map(|s| overlap(&self.held, s)).max().unwrap_or(0);
        let out: String = self.held[..self.held.len() - keep].to_owned();
        self.held.drain(..self.held.len() - keep);
        out
    }

    /// The text still held when the reply ends.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// The length of the longest end of `text` that is a proper start of `stop`.
fn overlap(text: &str, stop: &str) -> usize {
    (1..stop.len()).rev().find(|&k| stop.is_char_boundary(k) && text.ends_with(&stop[..k])).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (Vec<String>, bool) {
        let mut scan = StopScan::new(stops.iter().map(|s| (*s).to_owned()).collect());
        let mut out: Vec<String> = pieces.iter().map(|p| scan.push(p)).collect();
        out.push(scan.finish());
        (out, scan.stopped())
    }

    #[test]
    fn text_passes_until_a_stop_string_split_across_pieces() {
        let (out, stopped) = run(&["\n\nUser:"], &["Hello", " there\n", "\nUs", "er: more", " text"]);
        assert_eq!(out.concat(), "Hello there");
        assert!(stopped);
        // The tail that might start the stop string waits; the rest goes at once.
        assert_eq!(out[1], " there");
    }

    #[test]
    fn a_false_start_is_passed_on_and_the_earliest_stop_wins() {
        let (out, stopped) = run(&["END", "STOP"], &["a E", "n", "D? no: ST", "OP b END"]);
        assert_eq!(out.concat(), "a EnD? no: ");
        assert!(stopped);
        let mut scan = StopScan::new(vec!["END".into(), "STOP".into()]);
        scan.push("x STOP y END");
        assert_eq!(scan.matched(), Some("STOP"), "the stop string met first is the one named");
        let (out, stopped) = run(&["END"], &["EN", "d of it, é"]);
        assert_eq!(out.concat(), "ENd of it, é");
        assert!(!stopped);
        let (out, _) = run(&[], &["as ", "is"]);
        assert_eq!(out.concat(), "as is");
    }

    #[test]
    fn stop_strings_with_multibyte_characters_are_cut_on_char_boundaries() {
        let (out, stopped) = run(&["¿Sí?"], &["Dijo ¿", "S", "í? y"]);
        assert_eq!(out.concat(), "Dijo ");
        assert!(stopped);
    }
}
