//! Extractive QA fine-tuning with nothing downloaded: questions about the crate's own story
//! corpus (`corpus::qa_examples`), a WordPiece tokenizer and a small BERT trained here, scored
//! with SQuAD exact match against the "always the first number" baseline.
use massivetext::corpus::{first_number, qa_examples};
use massivetext::generate::QuestionAnsweringPipeline;
use massivetext::metrics::squad;
use massivetext::prelude::*;
use massivetext::tokenizer::TrainOptions;
use massivetext::train::{TaskLabel, question_answering_example};

#[test]
fn story_questions_are_answered_far_better_than_the_first_number() {
    let train = qa_examples(1500, 11);
    let test = qa_examples(150, 12);
    let texts: Vec<String> = train
        .iter()
        .flat_map(|q| [q.question.clone(), q.context.clone()])
        .collect();
    let mut opts = TrainOptions::new(200);
    opts.show_progress = false;
    let tok = Tokenizer::train(TokenizerKind::WordPiece, texts.iter(), &opts).unwrap();
    let examples: Vec<Example> = train
        .iter()
        .map(|q| {
            question_answering_example(
                &tok,
                &q.question,
                &q.context,
                q.answer_start,
                &q.answer_text,
                64,
            )
            .unwrap()
        })
        .collect();
    // every answer was found in the tokens
    assert!(examples.iter().all(
        |e| matches!(e.label, Some(TaskLabel::Span { start, end }) if start > 0 && end >= start)
    ));
    let config = BertConfig {
        vocab_size: tok.vocab_size(),
        hidden_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 128,
        max_position_embeddings: 64,
        hidden_dropout_prob: 0.0,
        attention_probs_dropout_prob: 0.0,
        ..BertConfig::small(tok.vocab_size())
    };
    let model = AutoModelForQuestionAnswering::from_config(&config, &Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = TrainingArguments {
        output_dir: dir.path().to_path_buf(),
        per_device_train_batch_size: 32,
        learning_rate: 2e-3,
        max_steps: Some(250),
        warmup_steps: 20,
        save_strategy: IntervalStrategy::No,
        disable_tqdm: true,
        ..Default::default()
    };
    let mut trainer = Trainer::new(model, args, examples)
        .unwrap()
        .with_tokenizer(&tok)
        .unwrap();
    let out = trainer.train().unwrap();
    let qa = QuestionAnsweringPipeline::new(trainer.model().clone(), tok.clone());
    let preds: Vec<String> = test
        .iter()
        .map(|q| {
            qa.call(&q.question, &q.context)
                .unwrap()
                .first()
                .map(|a| a.answer.clone())
                .unwrap_or_default()
        })
        .collect();
    let gold: Vec<Vec<String>> = test.iter().map(|q| vec![q.answer_text.clone()]).collect();
    let model_em = squad(&preds, &gold).unwrap().exact_match;
    let baseline: Vec<String> = test.iter().map(|q| first_number(&q.context)).collect();
    let base_em = squad(&baseline, &gold).unwrap().exact_match;
    println!(
        "story QA: training loss {:.3}; exact match {model_em:.1} vs first-number baseline {base_em:.1}",
        out.training_loss
    );
    assert!((30.0..=50.0).contains(&base_em), "baseline {base_em}");
    assert!(model_em >= 90.0, "exact match {model_em}");
}
