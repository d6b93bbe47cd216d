//! Issue 35, items 1 and 10: `model.clone()` is an independent copy (training the clone leaves
//! the original as it was; `share()` is the handle on the same weights), and a config whose
//! sizes cannot work is refused when the model is made, with `InvalidConfig` naming the field,
//! for every family.
use candle_core::{Device, Tensor};
use massivetext::Error;
use massivetext::models::{MistralConfig, Qwen2Config};
use massivetext::prelude::*;

fn weights<M: PreTrainedModel>(m: &M) -> Vec<(String, Vec<f32>)> {
    m.named_parameters()
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

fn changed(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x.1 != y.1).count()
}

fn tiny_gpt2() -> AutoModelForCausalLM {
    let config = Gpt2Config {
        n_layer: 2,
        n_embd: 16,
        n_head: 2,
        n_positions: 16,
        ..Gpt2Config::small(30)
    };
    AutoModelForCausalLM::from_config(config, &Device::Cpu).unwrap()
}

fn one_step<M: PreTrainedModel + 'static>(model: M) -> Trainer<M> {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<u32> = (0..200).map(|i| (i * 7 % 30) as u32).collect();
    let args = TrainingArguments {
        output_dir: dir.path().join("run"),
        max_steps: Some(1),
        per_device_train_batch_size: 4,
        learning_rate: 1e-2,
        save_strategy: IntervalStrategy::No,
        disable_tqdm: true,
        ..Default::default()
    };
    let mut t = Trainer::new(model, args, TokenWindows::new(ids, 8).unwrap()).unwrap();
    t.step().unwrap();
    t
}

/// Training the clone a step leaves every parameter of the original unchanged.
#[test]
fn training_a_clone_leaves_the_original_unchanged() {
    let model = tiny_gpt2();
    let before = weights(&model);
    let trainer = one_step(model.clone());
    assert_eq!(
        changed(&before, &weights(&model)),
        0,
        "the original changed when its clone was trained"
    );
    let trained = weights(trainer.model());
    assert!(
        changed(&before, &trained) >= before.len() - 1,
        "the clone itself trained: {} of {} parameters changed",
        changed(&before, &trained),
        before.len()
    );
    // and the clone's VarMap is its own
    let copy = model.clone();
    let a = model.varmap().data().lock().unwrap()["transformer.wte.weight"].clone();
    let b = copy.varmap().data().lock().unwrap()["transformer.wte.weight"].clone();
    assert_ne!(a.as_tensor().id(), b.as_tensor().id());
}

/// `share()` is the handle on the same weights: the Trainer trains the model it was given.
#[test]
fn a_shared_handle_trains_the_model() {
    let model = tiny_gpt2();
    let before = weights(&model);
    let trainer = one_step(model.share());
    let after = weights(&model);
    assert!(changed(&before, &after) >= before.len() - 1);
    assert_eq!(changed(&after, &weights(trainer.model())), 0);
    // a clone of a trained model copies its values, not its initialisation
    assert_eq!(changed(&after, &weights(&model.clone())), 0);
}

/// The other faces copy too, buffers and bf16 weights included, and the copy computes what the
/// original computes.
#[test]
fn every_face_clones_into_its_own_parameters() {
    let dev = Device::Cpu;
    let marian = MarianConfig {
        d_model: 16,
        encoder_layers: 1,
        decoder_layers: 1,
        encoder_attention_heads: 2,
        decoder_attention_heads: 2,
        encoder_ffn_dim: 32,
        decoder_ffn_dim: 32,
        max_position_embeddings: 16,
        ..MarianConfig::small(40, 0, 1)
    };
    let s2s = AutoModelForSeq2SeqLM::from_config(&marian, &dev).unwrap();
    let bert = BertConfig {
        num_hidden_layers: 1,
        hidden_size: 16,
        num_attention_heads: 2,
        intermediate_size: 32,
        ..BertConfig::small(40)
    };
    let mlm = AutoModelForMaskedLM::from_config(&bert, &dev).unwrap();
    let cls = AutoModelForSequenceClassification::from_config(&bert, &dev).unwrap();
    let bf16 = tiny_gpt2()
        .with_weight_dtype(candle_core::DType::BF16)
        .unwrap();
    fn check<M: PreTrainedModel>(name: &str, m: &M) {
        let copy = m.clone();
        let (a, b) = (m.named_parameters(), copy.named_parameters());
        assert_eq!(a.len(), b.len(), "{name}");
        for ((na, va), (nb, vb)) in a.iter().zip(&b) {
            assert_eq!(na, nb);
            assert_eq!(va.dtype(), vb.dtype(), "{name}: {na}");
            assert_ne!(
                va.as_tensor().id(),
                vb.as_tensor().id(),
                "{name}: {na} shared"
            );
        }
        // writing into the copy leaves the original as it was
        let (name0, v) = &b[0];
        v.set(&v.as_tensor().ones_like().unwrap()).unwrap();
        let orig = &a[0].1;
        assert_ne!(
            orig.as_tensor()
                .flatten_all()
                .unwrap()
                .to_dtype(candle_core::DType::F32)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_dtype(candle_core::DType::F32)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            "{name}: {name0}"
        );
    }
    check("seq2seq", &s2s);
    check("masked lm", &mlm);
    check("classifier", &cls);
    check("bf16 gpt2", &bf16);
    // a fresh copy computes the same logits (buffers such as final_logits_bias copied too)
    let src = Tensor::new(&[[5u32, 6, 7, 1]], &dev).unwrap();
    let labels = Tensor::new(&[[8i64, 9, 1]], &dev).unwrap();
    let mut s2s = s2s;
    s2s.eval();
    let args = ForwardArgs::new(&src).labels(&labels);
    let a: Vec<f32> = s2s
        .forward_with(&args)
        .unwrap()
        .logits
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let b: Vec<f32> = s2s
        .clone()
        .forward_with(&args)
        .unwrap()
        .logits
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(a, b);
}

/// `from_config` of a config whose sizes cannot work: `InvalidConfig`, naming the field.
fn refused<M: std::fmt::Debug>(what: &str, made: massivetext::Result<M>, field: &str) {
    match made {
        Err(Error::InvalidConfig(msg)) => {
            assert!(msg.contains(field), "{what}: `{field}` not named in: {msg}");
        }
        Err(e) => panic!("{what}: expected InvalidConfig naming `{field}`, got {e:?}"),
        Ok(m) => panic!("{what}: built {m:?}"),
    }
}

#[test]
fn gpt2_configs_that_cannot_work_are_refused_naming_the_field() {
    let ok = Gpt2Config {
        n_layer: 1,
        n_embd: 16,
        n_head: 2,
        n_positions: 16,
        ..Gpt2Config::small(30)
    };
    let dev = Device::Cpu;
    let cases: Vec<(Gpt2Config, &str)> = vec![
        (
            Gpt2Config {
                n_embd: 0,
                ..ok.clone()
            },
            "n_embd",
        ),
        (
            Gpt2Config {
                n_head: 0,
                ..ok.clone()
            },
            "n_head",
        ),
        (
            Gpt2Config {
                n_head: 3,
                ..ok.clone()
            },
            "n_head",
        ),
        (
            Gpt2Config {
                vocab_size: 0,
                ..ok.clone()
            },
            "vocab_size",
        ),
        (
            Gpt2Config {
                n_positions: 0,
                ..ok.clone()
            },
            "n_positions",
        ),
        (
            Gpt2Config {
                n_inner: Some(0),
                ..ok.clone()
            },
            "n_inner",
        ),
        (
            Gpt2Config {
                resid_pdrop: f64::NAN,
                ..ok.clone()
            },
            "resid_pdrop",
        ),
        (
            Gpt2Config {
                attn_pdrop: 1.0,
                ..ok.clone()
            },
            "attn_pdrop",
        ),
        (
            Gpt2Config {
                activation_function: "gelu_bogus".into(),
                ..ok.clone()
            },
            "activation_function",
        ),
    ];
    for (c, field) in cases {
        refused(field, AutoModelForCausalLM::from_config(&c, &dev), field);
        refused(field, AutoModel::from_config(&c, &dev), field);
        refused(
            field,
            AutoModelForSequenceClassification::from_config(&c, &dev),
            field,
        );
    }
    assert!(AutoModelForCausalLM::from_config(&ok, &dev).is_ok());
    // zero layers is a model (embeddings and ln_f), as in transformers
    assert!(AutoModelForCausalLM::from_config(Gpt2Config { n_layer: 0, ..ok }, &dev).is_ok());
}

#[test]
fn bert_and_roberta_configs_that_cannot_work_are_refused_naming_the_field() {
    let ok = BertConfig {
        num_hidden_layers: 1,
        hidden_size: 16,
        num_attention_heads: 2,
        intermediate_size: 32,
        max_position_embeddings: 32,
        ..BertConfig::small(40)
    };
    let dev = Device::Cpu;
    let cases: Vec<(BertConfig, &str)> = vec![
        (
            BertConfig {
                hidden_size: 0,
                ..ok.clone()
            },
            "hidden_size",
        ),
        (
            BertConfig {
                num_attention_heads: 0,
                ..ok.clone()
            },
            "num_attention_heads",
        ),
        (
            BertConfig {
                num_attention_heads: 5,
                ..ok.clone()
            },
            "num_attention_heads",
        ),
        (
            BertConfig {
                intermediate_size: 0,
                ..ok.clone()
            },
            "intermediate_size",
        ),
        (
            BertConfig {
                vocab_size: 0,
                ..ok.clone()
            },
            "vocab_size",
        ),
        (
            BertConfig {
                max_position_embeddings: 0,
                ..ok.clone()
            },
            "max_position_embeddings",
        ),
        (
            BertConfig {
                pad_token_id: 40,
                ..ok.clone()
            },
            "pad_token_id",
        ),
        (
            BertConfig {
                hidden_dropout_prob: -0.1,
                ..ok.clone()
            },
            "hidden_dropout_prob",
        ),
        (
            BertConfig {
                hidden_act: "tanhh".into(),
                ..ok.clone()
            },
            "hidden_act",
        ),
    ];
    for (c, field) in cases {
        refused(field, AutoModelForMaskedLM::from_config(&c, &dev), field);
        refused(
            field,
            AutoModelForQuestionAnswering::from_config(&c, &dev),
            field,
        );
        let r = RobertaConfig::from(c);
        refused(field, AutoModelForMaskedLM::from_config(&r, &dev), field);
    }
    // RoBERTa's positions start after the padding id
    let r = RobertaConfig {
        max_position_embeddings: 2,
        pad_token_id: 1,
        ..RobertaConfig::from(ok.clone())
    };
    refused(
        "roberta positions",
        AutoModel::from_config(&r, &dev),
        "max_position_embeddings",
    );
    assert!(AutoModelForMaskedLM::from_config(&ok, &dev).is_ok());
}

#[test]
fn marian_configs_that_cannot_work_are_refused_naming_the_field() {
    let ok = MarianConfig {
        d_model: 16,
        encoder_layers: 1,
        decoder_layers: 1,
        encoder_attention_heads: 2,
        decoder_attention_heads: 2,
        encoder_ffn_dim: 32,
        decoder_ffn_dim: 32,
        max_position_embeddings: 16,
        ..MarianConfig::small(40, 0, 1)
    };
    let dev = Device::Cpu;
    let cases: Vec<(MarianConfig, &str)> = vec![
        (
            MarianConfig {
                d_model: 0,
                ..ok.clone()
            },
            "d_model",
        ),
        (
            MarianConfig {
                encoder_attention_heads: 0,
                ..ok.clone()
            },
            "encoder_attention_heads",
        ),
        (
            MarianConfig {
                decoder_attention_heads: 3,
                ..ok.clone()
            },
            "decoder_attention_heads",
        ),
        (
            MarianConfig {
                encoder_ffn_dim: 0,
                ..ok.clone()
            },
            "encoder_ffn_dim",
        ),
        (
            MarianConfig {
                decoder_ffn_dim: 0,
                ..ok.clone()
            },
            "decoder_ffn_dim",
        ),
        (
            MarianConfig {
                vocab_size: 0,
                decoder_vocab_size: Some(0),
                ..ok.clone()
            },
            "vocab_size",
        ),
        (
            MarianConfig {
                max_position_embeddings: 0,
                ..ok.clone()
            },
            "max_position_embeddings",
        ),
        (
            MarianConfig {
                eos_token_id: 40,
                ..ok.clone()
            },
            "eos_token_id",
        ),
        (
            MarianConfig {
                dropout: 2.0,
                ..ok.clone()
            },
            "dropout",
        ),
    ];
    for (c, field) in cases {
        refused(field, AutoModelForSeq2SeqLM::from_config(&c, &dev), field);
    }
    assert!(AutoModelForSeq2SeqLM::from_config(&ok, &dev).is_ok());
}

/// The same checks on a `config.json`: an error naming the file and the key.
#[test]
fn a_config_json_with_a_zero_width_is_refused_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny_gpt2();
    m.save_pretrained(dir.path()).unwrap();
    let path = dir.path().join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["n_embd"] = 0.into();
    std::fs::write(&path, v.to_string()).unwrap();
    let e = AutoModelForCausalLM::from_dir(dir.path(), &Device::Cpu).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, Error::Config { .. })
            && msg.contains("config.json")
            && msg.contains("`n_embd` is 0"),
        "{msg}"
    );
}

/// `ModelConfig::size` counts a model's parameters from its config before anything is built
/// (the jobs' memory pre-check relies on it): within 3% of the built model's count, for every
/// family, with untied heads, kv heads and an encoder–decoder among them.
#[test]
fn every_family_counts_its_parameters_from_its_config() {
    let cpu = Device::Cpu;
    let decoder = |tie: bool| (1000, 128, 344, 2, 8, Some(2), tie);
    let (v, e, ffn, l, h, kv, tie) = decoder(false);
    let llama = LlamaConfig {
        vocab_size: v,
        hidden_size: e,
        intermediate_size: ffn,
        num_hidden_layers: l,
        num_attention_heads: h,
        num_key_value_heads: kv,
        tie_word_embeddings: tie,
        ..LlamaConfig::small(v)
    };
    let qwen2 = Qwen2Config {
        vocab_size: v,
        hidden_size: e,
        intermediate_size: ffn,
        num_hidden_layers: l,
        num_attention_heads: h,
        num_key_value_heads: kv,
        tie_word_embeddings: true,
        ..Qwen2Config::default()
    };
    let mistral = MistralConfig {
        vocab_size: v,
        hidden_size: e,
        intermediate_size: ffn,
        num_hidden_layers: l,
        num_attention_heads: h,
        num_key_value_heads: None,
        tie_word_embeddings: false,
        ..MistralConfig::default()
    };
    let causal: Vec<ModelConfig> = vec![
        Gpt2Config::small(1000).into(),
        llama.into(),
        qwen2.into(),
        mistral.into(),
    ];
    let mut cases: Vec<(String, f64, usize)> = Vec::new();
    for c in causal {
        let built = AutoModelForCausalLM::from_config(c.clone(), &cpu).unwrap();
        cases.push((
            c.model_type().into(),
            c.size().parameters,
            built.num_parameters(),
        ));
    }
    for c in [
        ModelConfig::from(BertConfig::small(1000)),
        RobertaConfig::small(1000).into(),
    ] {
        let built = AutoModelForMaskedLM::from_config(c.clone(), &cpu).unwrap();
        cases.push((
            c.model_type().into(),
            c.size().parameters,
            built.num_parameters(),
        ));
    }
    let marian = ModelConfig::from(MarianConfig::small(1000, 0, 1));
    let built = AutoModelForSeq2SeqLM::from_config(marian.clone(), &cpu).unwrap();
    cases.push((
        "marian".into(),
        marian.size().parameters,
        built.num_parameters(),
    ));
    for (family, counted, built) in cases {
        let off = (counted - built as f64).abs() / built as f64;
        assert!(
            off < 0.03,
            "{family}: counted {counted}, built {built} ({:.1}% off)",
            off * 100.0
        );
    }
}
