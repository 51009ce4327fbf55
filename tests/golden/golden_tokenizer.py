#!/usr/bin/env python3
"""Golden data for wanrun's UMT5 prompt tokenizer (src/models/tokenizer.h). Run by hand; the
outputs are committed.

    python3 tests/golden/golden_tokenizer.py tests/data/tokenizer            # golden data
    python3 tests/golden/golden_tokenizer.py tests/data/tokenizer --retrain  # also a new model
    python3 tests/golden/golden_tokenizer.py tests/data/tokenizer \
        --json-dir tests/data/tokenizer_json    # also the transformers 5.x save_pretrained folder

Needs sentencepiece, protobuf (transformers reads spiece.model with it), transformers
(T5TokenizerFast on the `tokenizers` backend), diffusers, torch and safetensors from PyPI.
Neither the engine, its build nor CI runs this script. The output is deterministic: training
uses one thread and no sampling (with sentencepiece 0.2.3, --retrain reproduces the committed
spiece.model byte for byte), and the safetensors header is written with sorted keys.

Writes into OUTDIR:
  spiece.model             a 1,500-piece SentencePiece *unigram* model (pad=0, eos=1, unk=2,
                           no bos, nmt_nfkc normalization: the layout of UMT5's spiece.model),
                           trained on a corpus this script generates from a fixed seed. It is
                           trained only when absent or with --retrain: other golden data
                           (text-encoder taps) are made with it, so it must not change by
                           accident.
  prompts.json             {"max_length": 512, "cases": [{"prompt", "clean", "spm_same"}...]}:
                           each raw prompt and diffusers' `prompt_clean` of it (UTF-8; "clean"
                           is left out when it equals the prompt), and whether libsentencepiece's
                           own Encode + </s> gives the same ids (false on the cases where the
                           fast tokenizer differs from the library: see src/models/tokenizer.c).
  tokenizer_ids.safetensors
                           `ids` I16 [sum n]: the real ids of every case (incl. </s>) one after
                           another, `lens` I16 [cases]: n per case. This script asserts that
                           transformers' output is exactly those ids followed by pad (0) up to
                           512, and a mask of n ones then zeros; the C test rebuilds and compares
                           all 512 of both. __metadata__ records the library versions.

With --json-dir DIR, also (transformers 5.x only; the script refuses another major version):
  DIR/tokenizer.json, DIR/tokenizer_config.json
                           exactly the files `save_pretrained` writes for the tokenizer loaded as
                           WanPipeline loads it (a folder with spiece.model and the bundled model's
                           tokenizer_config.json: tests/data/wan-tiny/tokenizer): with
                           transformers 5.x a saved pipeline's tokenizer/ holds only these two, no
                           spiece.model. The script checks that it writes no other file, that the
                           tokenizer.json's Precompiled char map is spiece.model's normalizer map
                           byte for byte, and that transformers loading DIR (AutoTokenizer and
                           T5TokenizerFast, as diffusers would) gives exactly the ids and masks of
                           tokenizer_ids.safetensors on every case: so tests/test_tokenizer.c
                           compares wanrun's tokenizer.json reader with the same golden ids.

The tokenizer is built as WanPipeline's is: `T5TokenizerFast` (transformers' T5Tokenizer on
the tokenizers backend) from spiece.model with 300 extra ids, called with
padding="max_length", max_length=512, truncation=True, add_special_tokens=True,
return_attention_mask=True on the output of diffusers' own `prompt_clean` (ftfy is not applied:
it is not installed, and wanrun does not implement it; this script refuses to run with it).
"""
import argparse
import io
import json
import os
import random
import struct
import sys

VOCAB_SIZE = 1500
EXTRA_IDS = 300
MAX_LENGTH = 512
SEED = 20250214

# ---- corpus ----

EN_SUBJECTS = [
    "a cat", "a small dog", "an old man", "a young woman", "two children", "a red fox",
    "a golden retriever", "a robot", "an astronaut", "a samurai", "a dancer", "a horse",
    "a flock of birds", "a koi fish", "a panda", "a dragon", "a knight", "a chef",
    "a street musician", "a surfer", "a skateboarder", "a ballerina", "an owl", "a tiger",
]
EN_VERBS = [
    "walks", "runs", "dances", "jumps", "sleeps", "eats noodles", "plays guitar", "swims",
    "flies", "rides a bicycle", "reads a book", "looks at the camera", "smiles", "turns around",
    "climbs a tree", "paints a picture", "cooks dinner", "waves", "sings", "surfs a wave",
]
EN_PLACES = [
    "in a forest", "on the beach", "in Tokyo at night", "in a snowy village", "on Mars",
    "in a neon-lit alley", "under the sea", "in a wheat field", "on a rooftop", "in the desert",
    "in a cozy kitchen", "in a medieval castle", "by a waterfall", "in a rainy street",
    "in space", "inside a train", "at sunset", "in a bamboo grove", "near a lake",
]
EN_STYLES = [
    "cinematic lighting", "4k", "high detail", "slow motion", "drone shot", "close-up",
    "wide angle", "soft focus", "bokeh", "film grain", "anime style", "watercolor",
    "photorealistic", "35mm", "golden hour", "volumetric fog", "handheld camera",
    "tracking shot", "time-lapse", "8K HDR", "studio lighting", "pastel colors",
]
EN_WORDS = (
    "the of and to in is was for on that with as by at from it his an be are this which or "
    "her have one had not but what all were when we there can more if no out so said up its "
    "about into than them only other new some could time these two may first then do any like "
    "my now over such our man me even most made after also did many before must through back "
    "years where much your way well down should because each just those people how too little "
    "state good very make world still own see men work long get here between both life being "
    "under never day same another know while last might us great old year off come since "
    "against go came right used take three light camera motion scene video frame color bright "
    "dark shadow water fire wind sky cloud mountain river city street night morning evening"
).split()
ZH = (
    "一只猫在草地上奔跑阳光明媚的下午城市街道夜晚霓虹灯闪烁小女孩穿着红色连衣裙跳舞"
    "镜头缓慢推进高清电影质感山川河流云雾缭绕古老的寺庙雪花飘落森林中的小鹿湖面倒影"
    "色调偏暖的画面细节丰富背景虚化整体画面过曝静态画面最差质量低质量丑陋的残缺的多余的手指"
    "画得不好的手部脸部畸形的毁容的形态畸形的肢体手指融合静止不动的画面杂乱的背景三条腿"
    "背景人很多倒着走明亮的色调字幕风格作品画作整体发灰"
)
JA = (
    "猫が公園を歩いている。夕焼けの海辺で少女が踊る。東京の夜景、ネオンが輝く。"
    "桜の花びらが舞い散る春の日。カメラがゆっくりとズームインする。雨の中を走る電車。"
    "おじいさんが縁側でお茶を飲んでいる。アニメ風のキャラクターが笑顔で手を振る。"
    "ラーメンを食べるロボット。富士山の上に雲が流れる。"
)
KO = "고양이가 공원에서 산책한다. 밤하늘의 별빛 아래에서 춤추는 소녀. 카메라가 천천히 움직인다."
RU = (
    "Кошка гуляет по парку. Девушка танцует на берегу моря на закате. Ночной город, неоновые "
    "огни. Медленное движение камеры, высокое качество, кинематографичный свет. Старый "
    "рыбак чинит сети у реки. Снег падает на тихую деревню."
).split()
LATIN = (
    "café crème brûlée naïve façade garçon déjà vu élève à la français où été château "
    "Müller Straße schön grün über Mädchen Fußball Größe Brücke "
    "niño mañana corazón canción pequeño señor jalapeño piña árbol "
    "ação coração não pão irmã São Paulo "
    "Tiếng Việt phở người đường Hà Nội "
    "Dvořák Łódź Kraków żółw świat čaj šťastie "
    "Ærøskøbing smørrebrød Åland fjörður Þór "
    "İstanbul çiçek ağaç şehir"
).split()
GREEK = "Μια γάτα περπατά στο πάρκο το ηλιοβασίλεμα".split()
EMOJI = [
    "🐱", "🐶", "🌅", "🌊", "🎬", "✨", "🔥", "🌸", "🚀", "🎸", "❤️", "👍", "😀", "🤖",
    "🐉", "🌙", "⭐", "🍜", "🎨", "👨‍👩‍👧", "🏳️‍🌈", "👋🏽", "☀️", "🌧️",
]
SYMBOLS = list("0123456789.,;:!?-()[]\"'/%&+*=#@$€£¥°×→…—–«»“”‘’・、。，！？：（）")


def corpus_lines(rng, n):
    """n deterministic lines of mixed-script text, weighted to English video prompts."""
    lines = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.40:
            s = "%s %s %s, %s" % (rng.choice(EN_SUBJECTS), rng.choice(EN_VERBS),
                                  rng.choice(EN_PLACES), ", ".join(rng.sample(EN_STYLES, 3)))
            if rng.random() < 0.3:
                s = s[0].upper() + s[1:] + "."
            if rng.random() < 0.2:
                s += " " + " ".join(rng.choice(EN_WORDS) for _ in range(rng.randint(4, 15)))
        elif kind < 0.50:
            s = " ".join(rng.choice(EN_WORDS) for _ in range(rng.randint(5, 25)))
        elif kind < 0.62:
            a = rng.randrange(len(ZH))
            s = ZH[a:a + rng.randint(6, 30)] + rng.choice(["，", "。", "、", ""])
        elif kind < 0.72:
            a = rng.randrange(len(JA))
            s = JA[a:a + rng.randint(6, 30)]
        elif kind < 0.76:
            a = rng.randrange(len(KO))
            s = KO[a:a + rng.randint(5, 25)]
        elif kind < 0.84:
            a = rng.randrange(len(RU))
            s = " ".join(RU[a:a + rng.randint(3, 10)])
        elif kind < 0.92:
            s = " ".join(rng.choice(LATIN) for _ in range(rng.randint(3, 10)))
        elif kind < 0.94:
            s = " ".join(rng.choice(GREEK) for _ in range(rng.randint(3, 6)))
        else:
            s = "%s %s %s" % (rng.choice(EN_SUBJECTS), rng.choice(EMOJI), rng.choice(EN_PLACES))
        if rng.random() < 0.15:
            s += " " + "".join(rng.choice(SYMBOLS) for _ in range(rng.randint(1, 4)))
        if rng.random() < 0.10:
            s += " " + rng.choice(EMOJI)
        if rng.random() < 0.05:
            s += " %d" % rng.randint(0, 100000)
        lines.append(s.strip())
    return lines


def train_model(path):
    """Trains the unigram model deterministically (one thread, no sampling, no shuffling) and
    writes it to `path` (the corpus never touches the disk, so no path is recorded in it)."""
    import sentencepiece as spm

    rng = random.Random(SEED)
    lines = corpus_lines(rng, 20000)
    if hasattr(spm, "set_random_generator_seed"):
        spm.set_random_generator_seed(SEED)
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=buf, model_type="unigram",
        vocab_size=VOCAB_SIZE, normalization_rule_name="nmt_nfkc", character_coverage=0.9995,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>",
        unk_piece="<unk>", num_threads=1, input_sentence_size=0, shuffle_input_sentence=False,
        byte_fallback=False, split_digits=False, add_dummy_prefix=True,
        remove_extra_whitespaces=True, minloglevel=2)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


# ---- golden prompts ----

WAN_EXAMPLES = [
    "A cat walks on the grass, realistic",
    "Two anthropomorphic cats in comfy boxing gear and bright gloves fight intensely on a "
    "spotlighted stage.",
    "Summer beach vacation style, a white cat wearing sunglasses sits on a surfboard. The "
    "fluffy-furred feline gazes directly at the camera with a relaxed expression. Blurred beach "
    "scenery forms the background featuring crystal-clear waters, distant green hills, and a "
    "blue sky dotted with white clouds. The cat assumes a naturally relaxed posture, as if "
    "savoring the sea breeze and warm sunlight. A close-up shot highlights the feline's "
    "intricate details and the refreshing atmosphere of the seaside.",
    # diffusers' documented negative prompt, and Wan's own (sample_neg_prompt)
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, "
    "images, static, overall gray, worst quality, low quality, JPEG compression residue, ugly, "
    "incomplete, extra fingers, poorly drawn hands, poorly drawn faces, deformed, disfigured, "
    "misshapen limbs, fused fingers, still picture, messy background, three legs, many people "
    "in the background, walking backwards",
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，"
    "低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，"
    "毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走",
    "A stylish woman walks down a Tokyo street filled with warm glowing neon and animated city "
    "signage. She wears a black leather jacket, a long red dress, and black boots.",
    "An astronaut riding a horse on the moon, 4K, cinematic, slow motion.",
    "一位宇航员在月球上骑马，电影感，慢动作，高清",
    "海边的日落，一只金毛犬在沙滩上奔跑，浪花拍打着岸边，镜头缓缓拉远。",
    "夜の東京、雨に濡れた路地をネオンが照らす。傘をさした女性がゆっくり歩く。シネマティック。",
]

HAND = [
    # whitespace: ASCII, Unicode White_Space, and the U+001C..U+001F that only strip() removes
    "  a   cat\t\twalks\n\non   the\r\ngrass  ",
    "\t\n\r\x0b\x0c leading and trailing \x0c\x0b\r\n\t",
    "non\u00a0breaking\u00a0space and\u3000ideographic\u3000space",
    "em\u2003space thin\u2009space hair\u200aspace narrow\u202fnbsp math\u205fspace",
    "line\u2028separator paragraph\u2029separator next\x85line ogham\u1680space",
    "\x1c\x1d file/group/record/unit separators \x1e\x1f",
    "inside\x1cthe\x1dtext\x1eare\x1fkept",
    " \x1c inside and outside \x1f ",
    "zero\u200bwidth\u200bspace and\u2060word\u2060joiner and \ufeffBOM",
    "mongolian\u180evowel separator",
    "   ",
    "\u3000\u3000\u3000",
    "\x1c\x1d\x1e\x1f",
    "a\u2581b \u2581c \u2581\u2581d\u2581\u2581",
    "\u2581",
    "tab\tseparated\tcolumns\tof\tvideo\tprompts",
    # HTML character references
    "Tom &amp; Jerry",
    "&lt;b&gt;bold&lt;/b&gt; text",
    "double escaped &amp;lt;tag&amp;gt; and &amp;amp;",
    "triple &amp;amp;lt; stays escaped once",
    "&quot;quoted&quot; &apos;single&apos; &#39;num&#39; &#x27;hex&#x27;",
    "caf&eacute; cr&egrave;me br&ucirc;l&eacute;e na&iuml;ve",
    "legacy without semicolon: &copy 2024 &reg &eacute &amp &lt &gt &nbsp!",
    "prefix rule: &notit; &notin; &ampx &copyright &ltfoo &eacutex",
    "unknown: &foo; &bar &; &#; &#x; &#xZZ; & alone, a&b, &&, &#",
    "numeric: &#65;&#66;&#67; &#x41;&#X42;&#x43 &#9731; &#x1F600; &#128512;",
    "invalid numeric: [&#0;] [&#13;] [&#128;] [&#x80;] [&#x9F;] [&#150;] [&#x81;]",
    "surrogates and range: [&#xD800;] [&#xDFFF;] [&#55296;] [&#x110000;] [&#1114112;]",
    "dropped: [&#1;] [&#x0B;] [&#x7F;] [&#xFDD0;] [&#xFFFE;] [&#x10FFFF;] [&#x1FFFF;]",
    "huge: &#99999999999999999999999; &#x7FFFFFFFFFFFFFFFFFFF;",
    "leading zeros: &#00065; &#x0000041;",
    "whitespace entities: a&nbsp;b&Tab;c&NewLine;d&#32;e&#x3000;f&#x2028;g",
    "&nbsp;&nbsp;leading and trailing&nbsp;&#x20;",
    "&#28;&#29; separators via references &#30;&#31;",
    "two passes: &amp;#65; &amp;#x42; &amp;copy; &amp;nbsp;x",
    "long name &CounterClockwiseContourIntegral; and &ThisIsNotAnEntityButItIsVeryLongIndeed;",
    "&abcdefghijklmnopqrstuvwxyzabcdefghijkl;",
    "non-ASCII in name &café; &amp中文; &lt中",
    "emoji entity &#x1F431; cat and &#x1F1EF;&#x1F1F5; flag",
    "math &Afr; &Bopf; &NotNestedGreaterGreater; &bne; &fjlig;",
    "entity\r&amp\rcarriage",
    "&#x20;&#x20;&#x20;",
    "&#1;",
    # added tokens
    "<extra_id_5>",
    "a <extra_id_5> b",
    "a<extra_id_5>b",
    "before</s>after",
    "</s>",
    "<pad>",
    "<unk>",
    "<pad><unk></s><extra_id_0><extra_id_299>",
    "<extra_id_300> <extra_id_05> <extra_id_-1> <extra_id_> <extra_id_1",
    "<<extra_id_1>> <</s>> <extra_id_<extra_id_2>>",
    " <extra_id_7>  spaced  <extra_id_8> ",
    "</s></s></s>",
    "full-width ＜／ｓ＞ and ＜extra_id_3＞ and ＜ｐａｄ＞ and ＜ｕｎｋ＞",
    "x＜extra_id_5＞y",
    "&lt;extra_id_9&gt; from an entity",
    "&amp;lt;/s&amp;gt; doubly escaped",
    "<EXTRA_ID_1> </S> <PAD>",
    "<extra_id_1>\u0301 combining after a token",
    "\u00a0<extra_id_4>\u00a0",
    # normalization quirks of tokenizers' Precompiled (per grapheme cluster)
    "\ufb01\u0301 \ufb02 \ufb00",
    "\uff21\u0301 \uff22",
    "e\u0301 e\u0301\u0302 e\u0323\u0301 a\u0308\u0304",
    "\uff76\uff9e\uff77\uff9e \uff8a\uff9f \uff76\uff9e",
    "\u30ab\u3099 \u30cf\u309a",
    "\u1100\u1161 \u1100\u1161\u11a8 \u1112\u1161\u11ab",
    "\u2460\u2461\u2462 \u337f \u2122 \u2121 \u00bd \u00b2\u00b3",
    "\u210c \u210d \U0001d400\U0001d401 \u2163 \u216b",
    "\u01c4 \u01c5 \u01c6 \u0132 \u0133",
    "\u00b4 \u00a8 \u02dc \u00b8 ` ^",
    "a\u00b4b c\u00a8d",
    "\u0301a leading combining mark",
    "\u0915\u094d\u0937 \u0915\u094d\u200d\u0937 \u0928\u0940\u0926",
    "\u0e01\u0e33 \u0e40\u0e01",
    "\u0600\u0661 \u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "\U0001f1ef\U0001f1f5\U0001f1fa\U0001f1f8\U0001f1eb",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467 family \U0001f44b\U0001f3fd wave",
    "\U0001f3f3\ufe0f\u200d\U0001f308 \u2764\ufe0f \u2600\ufe0f 1\ufe0f\u20e3 #\ufe0f\u20e3",
    "control \x01\x02\x07 chars \x7f\u0080\u009f",
    "soft\u00adhyphen zw\u200cnj zw\u200dj",
    "\ufffd replacement \U0010fffd private",
    "\u212b \u2126 \u00c5 A\u030a",
    "\uff10\uff11\uff12 \uff41\uff42\uff43 \uff01\uff1f",
    "\u3231 \u32a4 \u3300 \u33c4",
    # unknown characters (not in the 1,500-piece vocabulary)
    "\u2603\u2603 snowmen \u9f98\u9f49",
    "\u2500\u2502\u250c\u2510 box drawing",
    "\U00020000\U0002a6d6 rare ideographs",
    "mixed\u2603unknown\u9f98inside",
    "\u0f00\u0f01 tibetan \u1200\u1201 ethiopic",
    # other scripts
    "Кошка гуляет по парку, кинематографичный свет",
    "Ёжик в тумане, ёлка, съёмка",
    "Μια γάτα περπατά στο πάρκο",
    "고양이가 공원에서 산책한다",
    "Straße Größe Fußball Mädchen",
    "Dvořák Łódź Kraków żółw",
    "phở Hà Nội người Việt",
    "Ærøskøbing smørrebrød Þór",
    "İstanbul çiçek ağaç",
    "niño mañana corazón piña",
    "ação coração não pão",
    "हिन्दी में एक बिल्ली",
    "แมวเดินในสวน",
    "قطة تمشي في الحديقة",
    "חתול הולך בפארק",
    # digits, punctuation, symbols
    "1234567890 3.14159 1,000,000 2024-01-01 12:30",
    "!!! ??? ... --- *** ### @@@ $$$ %%% ^^^",
    "\"quoted\" 'single' (parens) [brackets] {braces}",
    "\u201csmart quotes\u201d \u2018single\u2019 \u2014 em dash \u2013 en dash \u2026",
    "\u00ab guillemets \u00bb \u2039 single \u203a",
    "path/to/file.mp4 http://example.com/?a=1&b=2",
    "C++ x^2 a_b a*b a+b=c 50% $100 \u20ac50 \u00a330 \u00a5100",
    "",
]


def random_prompts(rng, n):
    """Random strings over the characters the hand-written cases exercise (the same alphabets
    used while checking the C tokenizer against transformers on many thousands of prompts)."""
    pools = [
        "abcdefghijklmnopqrstuvwxyz ABCXYZ0123456789.,!?-'\"",
        "一只猫在草地上奔跑阳光明媚龘齉", "猫が公園を歩いているカメラｶﾞｷﾞｸﾞﾊﾟ゙゚",
        "éèêëàâäôöüçñÅØßœæ", "\u0301\u0300\u0302\u0308\u0323\u0327\u030a\u20e3\ufe0f\ufe0e",
        "ＡＢＣａｂｃ１２３＜＞／＿！？", "ﬁﬂﬀ①②③㍿㌔™℡½¼²³ℌℍ𝐀𝐁", "Кошка гуляет ёЁ",
        "\u1100\u1161\u11a8\uac00\ud55c\uad6d\uc5b4",
        "🐱🐶👨\u200d👩\u200d👧👋🏽🏳️\u200d🌈🇯🇵🇺🇸🇫🇷❤️",
        "\u0915\u094d\u0937\u093f\u0928\u0940\u0926\u0947", "\u0e01\u0e33\u0e40",
        "\u0600\u0601\u0627\u0644",
        " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2009\u2028\u3000\u200b\u180e"
        "\ufeff\u2581",
        "&amp;&lt;&gt;&quot;&#39;&#x27;&nbsp;&amp;lt;&copy&eacute;&#128512;&#0;&#128;"
        "&#xD800;&notit;&amp&ampx;&#65&#x41",
        "<extra_id_0><extra_id_5></s><pad><unk><extra_id_299><extra_id_300>＜extra_id_1＞",
        "\x01\x02\x07\x7f\x80\x9f\u00ad\u200c\u200d\u2060\ufffd\U0001f3fb\U000e0041",
        "´¨˜¸`^", "ǅǄǆ", "Ⅻⅻ⁵₅",
    ]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 30)):
            p = rng.choice(pools)
            if rng.random() < 0.5:
                parts.append(rng.choice(p))
            else:
                a = rng.randrange(len(p))
                parts.append(p[a:a + rng.randint(1, 8)])
        out.append("".join(parts))
    return out


def video_prompts(rng, n):
    """Realistic English video prompts from the corpus templates."""
    out = []
    for _ in range(n):
        s = "%s %s %s. %s." % (rng.choice(EN_SUBJECTS).capitalize(), rng.choice(EN_VERBS),
                               rng.choice(EN_PLACES), ", ".join(rng.sample(EN_STYLES, 4)))
        if rng.random() < 0.3:
            s += " The camera %s." % rng.choice(["slowly pans left", "zooms in", "orbits around",
                                                  "follows from behind", "tilts up to the sky"])
        out.append(s)
    return out


def long_prompt():
    """Long enough to be truncated at 511 tokens + </s>."""
    s = " ".join(WAN_EXAMPLES[2] for _ in range(6))
    return s + " 最后的句子不会出现在编码里。"


def all_prompts():
    rng = random.Random(SEED + 1)
    prompts = WAN_EXAMPLES + HAND + video_prompts(rng, 50) + random_prompts(rng, 90)
    rng2 = random.Random(SEED + 2)
    prompts += corpus_lines(rng2, 40)
    prompts.append(long_prompt())  # last: tests/test_tokenizer.c relies on it
    return prompts


# ---- golden data ----

def write_safetensors(path, tensors, meta):
    """I16 tensors from int lists, written with sorted header keys so that the file is
    byte-identical from run to run (safetensors' own writer orders the metadata at random)."""
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name in sorted(tensors):
        raw = struct.pack("<%dh" % len(tensors[name]), *tensors[name])
        header[name] = {"dtype": "I16", "shape": [len(tensors[name])],
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--retrain", action="store_true",
                    help="train a new spiece.model even when one exists")
    ap.add_argument("--json-dir", help="also write the tokenizer as transformers 5.x's "
                    "save_pretrained does (tokenizer.json + tokenizer_config.json) into this "
                    "directory, and check it against the golden ids")
    args = ap.parse_args()

    import diffusers
    import sentencepiece
    import tokenizers
    import torch
    import transformers
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean
    from diffusers.utils import is_ftfy_available
    from safetensors import safe_open
    from transformers import T5TokenizerFast

    if is_ftfy_available():
        sys.exit("ftfy is installed: diffusers would apply ftfy.fix_text, which wanrun does not "
                 "implement; run this in an environment without ftfy")

    os.makedirs(args.outdir, exist_ok=True)
    model = os.path.join(args.outdir, "spiece.model")
    if args.retrain or not os.path.exists(model):
        train_model(model)
        print("trained", model)

    import tempfile
    import shutil
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(model, os.path.join(tmp, "spiece.model"))
        transformers.logging.set_verbosity_error()
        tok = T5TokenizerFast.from_pretrained(tmp, extra_ids=EXTRA_IDS)
    sp = sentencepiece.SentencePieceProcessor(model_file=model)
    assert sp.get_piece_size() == VOCAB_SIZE
    assert len(tok) == VOCAB_SIZE + EXTRA_IDS
    assert tok.convert_tokens_to_ids("<extra_id_299>") == VOCAB_SIZE
    assert tok.convert_tokens_to_ids("<extra_id_0>") == VOCAB_SIZE + EXTRA_IDS - 1
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)

    # Python refuses int() of more than 4,300 decimal digits: the pipeline raises on such a
    # character reference (wanrun reports WR_ERR_INVALID_ARG; tests/test_tokenizer.c).
    try:
        prompt_clean("&#" + "1" * 4301 + ";")
        raise AssertionError("prompt_clean accepted a 4301-digit reference")
    except ValueError:
        pass
    prompt_clean("&#" + "0" * 4300 + ";")

    cases, ids_all, lens = [], [], []
    n_spm_same = 0
    for p in all_prompts():
        c = prompt_clean(p)
        enc = tok(c, padding="max_length", max_length=MAX_LENGTH, truncation=True,
                  add_special_tokens=True, return_attention_mask=True)
        ids, mask = enc["input_ids"], enc["attention_mask"]
        n = sum(mask)
        assert len(ids) == MAX_LENGTH and len(mask) == MAX_LENGTH
        assert mask == [1] * n + [0] * (MAX_LENGTH - n), p
        assert ids[n:] == [0] * (MAX_LENGTH - n) and ids[n - 1] == 1, p
        # the library's own pipeline, for the record (the C test checks the shim on these)
        spm_same = sp.encode(c)[:MAX_LENGTH - 1] + [1] == ids[:n]
        n_spm_same += spm_same
        case = {"prompt": p}
        if c != p:
            case["clean"] = c
        case["spm_same"] = spm_same
        cases.append(case)
        ids_all += ids[:n]
        lens.append(n)
    assert lens[-1] == MAX_LENGTH, "the long prompt must be truncated"
    assert "" in [c["prompt"] for c in cases] and 1 in lens

    with open(os.path.join(args.outdir, "prompts.json"), "w", encoding="utf-8") as f:
        json.dump({"max_length": MAX_LENGTH, "extra_ids": EXTRA_IDS,
                   "note": "prompt: raw input; clean: diffusers prompt_clean (no ftfy), "
                           "absent when equal to prompt; spm_same: libsentencepiece's own "
                           "encode + </s> equals transformers' ids. The ids are in "
                           "tokenizer_ids.safetensors.",
                   "cases": cases}, f, ensure_ascii=False, indent=0)
        f.write("\n")
    meta = {
        "generator": "tests/golden/golden_tokenizer.py",
        "torch": torch.__version__, "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__, "sentencepiece": sentencepiece.__version__,
        "diffusers": diffusers.__version__, "python": sys.version.split()[0],
        "max_length": str(MAX_LENGTH), "cases": str(len(cases)),
        "call": "T5TokenizerFast.from_pretrained(dir with spiece.model, extra_ids=300)"
                "(prompt_clean(p), padding='max_length', max_length=512, truncation=True, "
                "add_special_tokens=True, return_attention_mask=True)",
    }
    assert max(ids_all) < 2**15  # I16 holds every id of this 1,800-id vocabulary
    path = os.path.join(args.outdir, "tokenizer_ids.safetensors")
    write_safetensors(path, {"ids": ids_all, "lens": lens}, meta)
    with safe_open(path, "pt") as f:  # the reference reader agrees
        assert f.get_tensor("ids").tolist() == ids_all and f.get_tensor("lens").tolist() == lens
        assert f.metadata() == meta
    print("%d cases, %d ids, %d where libsentencepiece agrees" %
          (len(cases), len(ids_all), n_spm_same))
    if args.json_dir:
        save_json_folder(args.json_dir, model, tok, all_prompts(), ids_all, lens)


# The tokenizer/ folder of the bundled model (spiece.model + this tokenizer_config.json), which
# WanPipeline.from_pretrained(tests/data/wan-tiny) loads.
WAN_TINY_TOKENIZER_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                         "data", "wan-tiny", "tokenizer",
                                         "tokenizer_config.json")


def save_json_folder(out, model, tok, prompts, ids_all, lens):
    """Writes `out` as transformers 5.x's save_pretrained does, and checks it (see the module
    docstring)."""
    import shutil
    import tempfile

    import transformers
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean
    from sentencepiece import sentencepiece_model_pb2
    from transformers import AutoTokenizer, T5TokenizerFast

    if not transformers.__version__.startswith("5."):
        sys.exit("--json-dir: transformers %s; the folder must be what transformers 5.x writes"
                 % transformers.__version__)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        os.makedirs(src)
        shutil.copy(model, os.path.join(src, "spiece.model"))
        shutil.copy(WAN_TINY_TOKENIZER_CONFIG, os.path.join(src, "tokenizer_config.json"))
        pipe_tok = T5TokenizerFast.from_pretrained(src)  # what WanPipeline loads
        saved = os.path.join(tmp, "saved")
        written = pipe_tok.save_pretrained(saved)
        names = sorted(os.listdir(saved))
        assert names == ["tokenizer.json", "tokenizer_config.json"], names
        assert sorted(os.path.basename(w) for w in written) == names, written
        os.makedirs(out, exist_ok=True)
        for f in os.listdir(out):  # the folder holds exactly what save_pretrained wrote
            if f not in names:
                os.remove(os.path.join(out, f))
        for n in names:
            shutil.copy(os.path.join(saved, n), os.path.join(out, n))

    with open(os.path.join(out, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    proto = sentencepiece_model_pb2.ModelProto()
    with open(model, "rb") as f:
        proto.ParseFromString(f.read())
    import base64
    assert tj["model"]["type"] == "Unigram" and tj["model"]["unk_id"] == 2
    assert tj["normalizer"]["type"] == "Precompiled"
    assert (base64.b64decode(tj["normalizer"]["precompiled_charsmap"], validate=True)
            == proto.normalizer_spec.precompiled_charsmap)
    assert len(tj["model"]["vocab"]) == VOCAB_SIZE + EXTRA_IDS

    loaded = [AutoTokenizer.from_pretrained(out), T5TokenizerFast.from_pretrained(out)]
    k = 0
    for i, p in enumerate(prompts):
        c = prompt_clean(p)
        n = lens[i]
        want_ids = ids_all[k:k + n] + [0] * (MAX_LENGTH - n)
        want_mask = [1] * n + [0] * (MAX_LENGTH - n)
        k += n
        for t in [pipe_tok] + loaded:
            enc = t(c, padding="max_length", max_length=MAX_LENGTH, truncation=True,
                    add_special_tokens=True, return_attention_mask=True)
            assert enc["input_ids"] == want_ids and enc["attention_mask"] == want_mask, (
                type(t).__name__, p)
    print("%s: %s from transformers %s save_pretrained; loading it gives the golden ids on "
          "all %d cases" % (out, ", ".join(names), transformers.__version__, len(prompts)))


if __name__ == "__main__":
    main()
