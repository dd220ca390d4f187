//! The one outbox: every send and edit goes through one queue that paces them per chat
//! (one a second in private chats, 20 a minute in groups), merges queued edits of the same
//! message, honours 429 `retry_after`, retries network errors with backoff and finally logs
//! what could not be sent. Long texts are split below 4,096 characters at line boundaries.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::api::{Api, ApiError, Keyboard};

/// Most UTF-16 units in one message part (Telegram's limit is 4,096 after parsing).
pub const PART_LIMIT: usize = 4000;
/// Tries of one send or edit before it is given up (and logged).
const MAX_TRIES: u32 = 6;

/// Escapes text for `parse_mode: HTML`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn units(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Splits HTML text into parts of at most `limit` UTF-16 units, at line boundaries where
/// possible; a longer line is cut at a character that is not inside a tag or an entity.
/// Tags are expected not to span lines.
pub fn split(text: &str, limit: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    for line in text.split_inclusive('\n') {
        if units(&cur) + units(line) <= limit {
            cur.push_str(line);
            continue;
        }
        if !cur.is_empty() {
            parts.push(std::mem::take(&mut cur));
        }
        let mut rest = line;
        while units(rest) > limit {
            let cut = safe_cut(rest, limit);
            parts.push(rest[..cut].to_owned());
            rest = &rest[cut..];
        }
        cur.push_str(rest);
    }
    if !cur.trim().is_empty() || parts.is_empty() {
        parts.push(cur);
    }
    parts
        .into_iter()
        .map(|p| p.trim_end_matches('\n').to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The byte index of the last cut within `limit` units that is outside `<..>` and `&..;`.
fn safe_cut(s: &str, limit: usize) -> usize {
    let mut used = 0;
    let mut last_safe = 0;
    let mut in_tag = false;
    let mut in_entity = false;
    for (i, c) in s.char_indices() {
        if !in_tag && !in_entity {
            last_safe = i;
        }
        used += c.len_utf16();
        if used > limit {
            break;
        }
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            '&' => in_entity = true,
            ';' => in_entity = false,
            _ => {}
        }
        if !in_tag && !in_entity {
            last_safe = i + c.len_utf8();
        }
    }
    if last_safe == 0 {
        // Nothing safe (a huge tag): cut at a character boundary.
        let mut n = 0;
        for (i, c) in s.char_indices() {
            if n + c.len_utf16() > limit {
                return i.max(c.len_utf8());
            }
            n += c.len_utf16();
        }
        return s.len();
    }
    last_safe
}

/// An edit too long for one message keeps its first part and says so.
fn fit_edit(html: &str) -> String {
    let parts = split(html, PART_LIMIT - 2);
    match parts.len() {
        0 | 1 => html.to_owned(),
        _ => format!("{}\n…", parts[0]),
    }
}

enum Out {
    Send {
        chat: i64,
        html: String,
        buttons: Option<Keyboard>,
        reply_to: Option<i64>,
        done: Option<oneshot::Sender<Sent>>,
    },
    Edit {
        chat: i64,
        message_id: i64,
        html: String,
        buttons: Option<Keyboard>,
    },
}

impl Out {
    fn chat(&self) -> i64 {
        match self {
            Out::Send { chat, .. } | Out::Edit { chat, .. } => *chat,
        }
    }
}

struct Item {
    out: Out,
    tries: u32,
}

/// Why a message was given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// Telegram refused it for good (a 4xx other than 429): sending it again cannot help.
    pub permanent: bool,
    /// The last error, for the log.
    pub error: String,
}

/// What became of a message: its id, or why it was given up.
pub type Sent = Result<i64, Failed>;

/// The outbox's handle. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Out>,
}

impl Outbox {
    /// Starts the outbox's task on the current runtime.
    pub fn start(api: Api) -> Outbox {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(api, rx));
        Outbox { tx }
    }

    /// Hands `out` to the outbox's task (gone only when the runtime ends).
    fn queue(&self, out: Out) {
        let _ = self.tx.send(out);
    }

    /// Queues a message (split when long: the buttons go with the last part, which is also
    /// the id answered). The receiver gets the id, or why it could not be sent.
    pub fn send(
        &self,
        chat: i64,
        html: String,
        buttons: Option<Keyboard>,
        reply_to: Option<i64>,
    ) -> oneshot::Receiver<Sent> {
        let (done_tx, done_rx) = oneshot::channel();
        let parts = split(&html, PART_LIMIT);
        let n = parts.len();
        let mut done = Some(done_tx);
        let mut buttons = buttons;
        for (i, part) in parts.into_iter().enumerate() {
            let last = i + 1 == n;
            self.queue(Out::Send {
                chat,
                html: part,
                buttons: if last { buttons.take() } else { None },
                reply_to: if i == 0 { reply_to } else { None },
                done: if last { done.take() } else { None },
            });
        }
        done_rx
    }

    /// [`Outbox::send`] without waiting to learn the message's id.
    pub fn post(&self, chat: i64, html: String, reply_to: Option<i64>) {
        drop(self.send(chat, html, None, reply_to));
    }

    /// Queues an edit; a queued edit of the same message not yet sent is replaced.
    pub fn edit(&self, chat: i64, message_id: i64, html: String, buttons: Option<Keyboard>) {
        self.queue(Out::Edit {
            chat,
            message_id,
            html: fit_edit(&html),
            buttons,
        });
    }
}

/// The least time between two calls to one chat.
fn interval(chat: i64) -> Duration {
    if chat < 0 {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(1)
    }
}

/// Queues `out`; false when it was merged into a queued edit of the same message.
fn push(queue: &mut VecDeque<Item>, out: Out) -> bool {
    if let Out::Edit {
        chat,
        message_id,
        html,
        buttons,
    } = out
    {
        for it in queue.iter_mut() {
            if let Out::Edit {
                chat: c,
                message_id: m,
                html: h,
                buttons: b,
            } = &mut it.out
            {
                if *c == chat && *m == message_id {
                    *h = html;
                    *b = buttons;
                    return false;
                }
            }
        }
        queue.push_back(Item {
            out: Out::Edit {
                chat,
                message_id,
                html,
                buttons,
            },
            tries: 0,
        });
        return true;
    }
    queue.push_back(Item { out, tries: 0 });
    true
}

async fn run(api: Api, mut rx: mpsc::UnboundedReceiver<Out>) {
    let mut queue: VecDeque<Item> = VecDeque::new();
    let mut next_at: HashMap<i64, Instant> = HashMap::new();
    let take = |queue: &mut VecDeque<Item>, o: Out| {
        push(queue, o);
    };
    loop {
        if queue.is_empty() {
            match rx.recv().await {
                Some(o) => take(&mut queue, o),
                None => return,
            }
        }
        while let Ok(o) = rx.try_recv() {
            take(&mut queue, o);
        }
        let now = Instant::now();
        let ready = |chat: i64| next_at.get(&chat).is_none_or(|t| *t <= now);
        let Some(i) = queue.iter().position(|it| ready(it.out.chat())) else {
            let wake = queue
                .iter()
                .filter_map(|it| next_at.get(&it.out.chat()))
                .min()
                .copied()
                .unwrap_or(now + Duration::from_millis(100));
            tokio::select! {
                _ = tokio::time::sleep_until(wake.into()) => {}
                o = rx.recv() => match o {
                    Some(o) => take(&mut queue, o),
                    None => return,
                },
            }
            continue;
        };
        let Some(mut item) = queue.remove(i) else {
            continue;
        };
        let chat = item.out.chat();
        let answer = match &item.out {
            Out::Send {
                html,
                buttons,
                reply_to,
                ..
            } => api
                .send_message(chat, html, buttons.as_ref(), *reply_to)
                .await
                .map(Some),
            Out::Edit {
                message_id,
                html,
                buttons,
                ..
            } => api
                .edit_message(chat, *message_id, html, buttons.as_ref())
                .await
                .map(|()| None),
        };
        let now = Instant::now();
        next_at.insert(chat, now + interval(chat));
        match answer {
            Ok(id) => {
                if let (Out::Send { done: Some(d), .. }, Some(id)) = (item.out, id) {
                    let _ = d.send(Ok(id));
                }
            }
            Err(e) => {
                item.tries += 1;
                let again = match &e {
                    ApiError::Api {
                        code: 429,
                        retry_after,
                        ..
                    } => {
                        let wait = Duration::from_secs(retry_after.unwrap_or(5).max(1));
                        tracing::warn!(
                            chat,
                            "Telegram asks to slow down: retrying in {}s",
                            wait.as_secs()
                        );
                        next_at.insert(chat, now + wait);
                        // A 429 is Telegram's pacing, not a failure: it does not use up tries.
                        item.tries -= 1;
                        true
                    }
                    ApiError::Network(_) | ApiError::Decode(_) => true,
                    ApiError::Api { code, .. } => *code >= 500,
                };
                if again && item.tries < MAX_TRIES {
                    if e.code() != Some(429) {
                        let wait = Duration::from_secs(1 << item.tries.min(5));
                        tracing::warn!(
                            chat,
                            "cannot send to Telegram (try {} of {MAX_TRIES}, again in {}s): {e}",
                            item.tries,
                            wait.as_secs()
                        );
                        next_at.insert(chat, now + wait);
                    }
                    queue.push_front(item);
                } else {
                    let what = match &item.out {
                        Out::Send { .. } => "a message",
                        Out::Edit { .. } => "an edit",
                    };
                    tracing::error!(
                        chat,
                        "gave up sending {what} to Telegram after {} tries: {e}",
                        item.tries
                    );
                    if let Out::Send { done: Some(d), .. } = item.out {
                        let _ = d.send(Err(Failed {
                            permanent: !again,
                            error: e.to_string(),
                        }));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_the_three_characters() {
        assert_eq!(escape("a<b> & c"), "a&lt;b&gt; &amp; c");
        assert_eq!(escape("plain *md* _x_ (y)."), "plain *md* _x_ (y).");
    }

    #[test]
    fn long_texts_split_at_lines_below_the_limit() {
        let text: String = (0..300)
            .map(|i| format!("line {i:04} {}\n", "x".repeat(40)))
            .collect();
        let parts = split(&text, 4000);
        assert!(parts.len() >= 4, "{}", parts.len());
        for p in &parts {
            assert!(units(p) <= 4000);
            assert!(p.starts_with("line "), "{}", &p[..20]);
        }
        assert_eq!(parts.join("\n") + "\n", text);
    }

    #[test]
    fn a_long_line_is_cut_outside_entities_and_tags() {
        let line = format!("<b>t</b> {}", "a&amp;".repeat(2000));
        let parts = split(&line, 100);
        for p in &parts {
            assert!(units(p) <= 100);
            assert!(!p.ends_with('&') && !p.ends_with("&am"), "{p}");
            let opens = p.matches('&').count();
            assert_eq!(opens, p.matches(';').count(), "{p}");
        }
        assert_eq!(parts.concat(), line);
        // UTF-16: an emoji counts two units.
        let emoji = "😀".repeat(100);
        for p in split(&emoji, 51) {
            assert!(units(&p) <= 51);
        }
    }

    #[test]
    fn queued_edits_of_one_message_merge() {
        let mut q = VecDeque::new();
        let e = |h: &str| Out::Edit {
            chat: 1,
            message_id: 5,
            html: h.into(),
            buttons: None,
        };
        assert!(push(&mut q, e("a")));
        push(
            &mut q,
            Out::Edit {
                chat: 1,
                message_id: 6,
                html: "x".into(),
                buttons: None,
            },
        );
        assert!(!push(&mut q, e("b")), "merged, not queued");
        assert_eq!(q.len(), 2);
        match &q[0].out {
            Out::Edit { html, .. } => assert_eq!(html, "b"),
            _ => panic!(),
        }
    }
}
