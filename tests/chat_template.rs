//! Issue 26: chat templates rendered with minijinja give transformers' text and ids
//! (`apply_chat_template`), from a GGUF file's `tokenizer.chat_template` or a folder's
//! `tokenizer_config.json` / `chat_template.jinja`; a bad template is an error naming the line.
use massivetext::prelude::*;

#[path = "common/smollm2.rs"]
mod smollm2;
use smollm2::{expected, gguf_path};

fn messages(v: &Value) -> Vec<ChatMessage> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn smollm2s_template_gives_transformers_text_and_ids() {
    let want = expected();
    let tok = Tokenizer::from_gguf(gguf_path()).unwrap();
    assert_eq!(tok.chat_template(), want["chat_template"].as_str());
    for c in want["chat"].as_array().unwrap() {
        let m = messages(&c["messages"]);
        let gen_prompt = c["add_generation_prompt"].as_bool().unwrap();
        let text = tok.render_chat_template(&m, gen_prompt).unwrap();
        assert_eq!(text, c["text"].as_str().unwrap());
        let ids: Vec<u32> = serde_json::from_value(c["ids"].clone()).unwrap();
        assert_eq!(tok.apply_chat_template(&m, gen_prompt).unwrap(), ids);
    }
}

#[test]
fn the_constructors_build_the_roles() {
    assert_eq!(ChatMessage::system("s").role, "system");
    assert_eq!(ChatMessage::user("u").role, "user");
    let a = ChatMessage::assistant("a");
    assert_eq!((a.role.as_str(), a.content.as_str()), ("assistant", "a"));
}

/// A folder with SmolLM2's tokenizer and a template of our own, in each place transformers
/// reads one from.
fn folder_with(template_in_config: Option<Value>, jinja_file: Option<&str>) -> tempfile::TempDir {
    let tok = Tokenizer::from_gguf(gguf_path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    tok.save_pretrained(dir.path()).unwrap();
    let config_path = dir.path().join("tokenizer_config.json");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    match template_in_config {
        Some(t) => config["chat_template"] = t,
        None => {
            config.as_object_mut().unwrap().remove("chat_template");
        }
    }
    std::fs::write(&config_path, serde_json::to_string(&config).unwrap()).unwrap();
    if let Some(j) = jinja_file {
        std::fs::write(dir.path().join("chat_template.jinja"), j).unwrap();
    }
    dir
}

#[test]
fn a_folder_template_comes_from_tokenizer_config_or_chat_template_jinja() {
    let chat = [ChatMessage::user("hi")];
    let dir = folder_with(
        Some(json!("{{ bos_token }}{{ messages[0].content }}")),
        None,
    );
    let tok = Tokenizer::from_pretrained(dir.path()).unwrap();
    assert_eq!(
        tok.render_chat_template(&chat, false).unwrap(),
        "<|im_start|>hi"
    );
    assert_eq!(
        tok.apply_chat_template(&chat, false).unwrap(),
        vec![1, 6004]
    );

    // transformers 5 saves the template as its own file, which wins
    let dir = folder_with(Some(json!("{{ 'config' }}")), Some("{{ eos_token }}file"));
    let tok = Tokenizer::from_pretrained(dir.path()).unwrap();
    assert_eq!(
        tok.render_chat_template(&chat, false).unwrap(),
        "<|im_end|>file"
    );

    // the older list of named templates: the `default` one
    let named =
        json!([{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]);
    let tok = Tokenizer::from_pretrained(folder_with(Some(named), None).path()).unwrap();
    assert_eq!(tok.render_chat_template(&chat, false).unwrap(), "D");
    let named = json!([{"name": "tool_use", "template": "T"}]);
    let e = Tokenizer::from_pretrained(folder_with(Some(named), None).path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tokenizer_config.json") && e.contains("default"),
        "{e}"
    );

    // none at all: a clear error, not an empty string
    let tok = Tokenizer::from_pretrained(folder_with(None, None).path()).unwrap();
    let e = tok
        .apply_chat_template(&chat, true)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no chat template") && e.contains("with_chat_template"),
        "{e}"
    );
}

#[test]
fn bad_templates_say_where_and_what() {
    let tok = Tokenizer::from_gguf(gguf_path()).unwrap();
    let chat = [ChatMessage::user("hi")];
    let e = tok
        .clone()
        .with_chat_template("{% for m in messages %}\n{{ m.content }\n{% endfor %}")
        .render_chat_template(&chat, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("chat template line 2") && e.contains("syntax error"),
        "{e}"
    );
    let e = tok
        .clone()
        .with_chat_template("{% if messages[0].role == 'user' %}{{ raise_exception('Conversation roles must alternate') }}{% endif %}")
        .apply_chat_template(&chat, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("Conversation roles must alternate"), "{e}");
    let e = tok
        .with_chat_template("{{ messages[0].content | no_such_filter }}")
        .render_chat_template(&chat, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 1") && e.contains("no_such_filter"), "{e}");
}
