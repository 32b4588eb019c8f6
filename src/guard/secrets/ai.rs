//! AI providers and tooling. Anthropic (`sk-ant-…`), OpenAI (`sk-proj-…`,
//! legacy `sk-…T3BlbkFJ…`) and Google AI (`AIza…`) keys are the
//! `AnthropicApiKey`, `OpenAiApiKey` and `GoogleApiKey` builtins, which
//! `Secrets` enables with this pack.

use super::{assign, rule, validate, wb, Check, SecretRule};

pub const RULES: &[SecretRule] = &[
    rule!(
        HuggingFaceAccessToken,
        HUGGINGFACE_TOKEN,
        ["hf_"],
        concat!(wb!(), r"hf_[A-Za-z]{34}", wb!()),
        None,
        Check::Random(14),
        37,
        "[[hf_{L:34}]]"
    ),
    rule!(
        HuggingFaceOrgToken,
        HUGGINGFACE_TOKEN,
        ["api_org_"],
        concat!(wb!(), r"api_org_[A-Za-z]{34}", wb!()),
        None,
        Check::Random(14),
        42,
        "[[api_org_{L:34}]]"
    ),
    rule!(
        CohereApiKey,
        COHERE_API_KEY,
        ["cohere", "co_api_key"],
        assign!(
            "(?i:cohere_api_key|cohere_key|co_api_key|cohere_token)",
            "[A-Za-z0-9]{40}(?:[A-Za-z0-9]*)"
        ),
        Some(1),
        Check::Sized(40, 14),
        80,
        "COHERE_API_KEY=[[{a:40}]]"
    ),
    rule!(
        ReplicateApiToken,
        REPLICATE_API_TOKEN,
        ["r8_"],
        concat!(wb!(), r"r8_[A-Za-z0-9]{37}", wb!()),
        None,
        Check::Random(14),
        40,
        "[[r8_{a:37}]]"
    ),
    rule!(
        GroqApiKey,
        GROQ_API_KEY,
        ["gsk_"],
        concat!(wb!(), r"gsk_[A-Za-z0-9]{52}", wb!()),
        None,
        Check::Random(14),
        56,
        "[[gsk_{a:52}]]"
    ),
    rule!(
        PerplexityApiKey,
        PERPLEXITY_API_KEY,
        ["pplx-"],
        concat!(wb!(), r"pplx-[A-Za-z0-9]{48}", wb!()),
        None,
        Check::Random(14),
        53,
        "[[pplx-{a:48}]]"
    ),
    rule!(
        XaiApiKey,
        XAI_API_KEY,
        ["xai-"],
        concat!(wb!(), r"xai-[A-Za-z0-9]{80}", wb!()),
        None,
        Check::Random(16),
        84,
        "[[xai-{a:80}]]"
    ),
    rule!(
        OpenRouterApiKey,
        OPENROUTER_API_KEY,
        ["sk-or-v1-"],
        concat!(wb!(), r"sk-or-v1-[a-f0-9]{64}", wb!()),
        None,
        Check::Random(12),
        73,
        "[[sk-or-v1-{h:64}]]"
    ),
    rule!(
        LangfuseSecretKey,
        LANGFUSE_SECRET_KEY,
        ["sk-lf-"],
        concat!(
            wb!(),
            r"sk-lf-[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}",
            wb!()
        ),
        None,
        Check::Random(10),
        42,
        "[[sk-lf-{h:8}-{h:4}-{h:4}-{h:4}-{h:12}]]"
    ),
    rule!(
        LangSmithApiKey,
        LANGSMITH_API_KEY,
        ["lsv2_pt_", "lsv2_sk_"],
        concat!(wb!(), r"lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}", wb!()),
        None,
        Check::Random(10),
        51,
        "[[lsv2_pt_{h:32}_{h:10}]]"
    ),
    rule!(
        PineconeApiKey,
        PINECONE_API_KEY,
        ["pcsk_"],
        concat!(wb!(), r"pcsk_[A-Za-z0-9]{5,6}_[A-Za-z0-9]{60,70}", wb!()),
        None,
        Check::Random(16),
        82,
        "[[pcsk_{a:6}_{a:63}]]"
    ),
    rule!(
        NvidiaApiKey,
        NVIDIA_API_KEY,
        ["nvapi-"],
        concat!(wb!(), r"nvapi-[A-Za-z0-9_-]{64}", wb!()),
        None,
        Check::Random(16),
        70,
        "[[nvapi-{a:64}]]"
    ),
    rule!(
        CerebrasApiKey,
        CEREBRAS_API_KEY,
        ["csk-"],
        concat!(wb!(), r"csk-[a-z0-9]{48}", wb!()),
        None,
        Check::Random(14),
        52,
        "[[csk-{l:48}]]"
    ),
    rule!(
        FireworksApiKey,
        FIREWORKS_API_KEY,
        ["fw_"],
        concat!(wb!(), r"fw_[A-Za-z0-9]{24}", wb!()),
        None,
        Check::Random(12),
        27,
        "[[fw_{a:24}]]"
    ),
    rule!(
        TogetherApiKey,
        TOGETHER_API_KEY,
        ["tgp_v1_"],
        concat!(wb!(), r"tgp_v1_[A-Za-z0-9_-]{43}", wb!()),
        None,
        Check::Random(14),
        50,
        "[[tgp_v1_{a:43}]]"
    ),
    rule!(
        ElevenLabsApiKey,
        ELEVENLABS_API_KEY,
        ["sk_"],
        concat!(wb!(), r"sk_[a-f0-9]{48}", wb!()),
        None,
        Check::Random(12),
        51,
        "[[sk_{h:48}]]"
    ),
    rule!(
        MistralApiKey,
        MISTRAL_API_KEY,
        ["mistral"],
        assign!(
            "(?i:mistral_api_key|mistral_key)",
            "[A-Za-z0-9]{32}(?:[A-Za-z0-9]*)"
        ),
        Some(1),
        Check::Sized(32, 12),
        70,
        "MISTRAL_API_KEY=[[{a:32}]]"
    ),
    rule!(
        DeepSeekApiKey,
        DEEPSEEK_API_KEY,
        ["deepseek"],
        concat!(
            "(?i:deepseek_api_key|deepseek_key)",
            r#"["']? ?(?::=|=>|=|:) ?["']?sk-([A-Za-z0-9]+)"#
        ),
        Some(1),
        Check::Shape(32, validate::hex, 10),
        70,
        "DEEPSEEK_API_KEY=sk-[[{h:32}]]"
    ),
    rule!(
        DeepgramApiKey,
        DEEPGRAM_API_KEY,
        ["deepgram"],
        assign!("(?i:deepgram_api_key|deepgram_key)", "[A-Za-z0-9]+"),
        Some(1),
        Check::Shape(40, validate::hex, 10),
        70,
        "DEEPGRAM_API_KEY=[[{h:40}]]"
    ),
    rule!(
        AssemblyAiApiKey,
        ASSEMBLYAI_API_KEY,
        ["assemblyai"],
        assign!(
            "(?i:assemblyai_api_key|assembly_ai_api_key|assemblyai_key)",
            "[A-Za-z0-9]+"
        ),
        Some(1),
        Check::Shape(32, validate::hex, 10),
        70,
        "ASSEMBLYAI_API_KEY=[[{h:32}]]"
    ),
    rule!(
        VoyageApiKey,
        VOYAGE_API_KEY,
        ["pa-"],
        concat!(wb!(), r"pa-[A-Za-z0-9_-]{43}", wb!()),
        None,
        Check::Random(16),
        46,
        "[[pa-{a:43}]]"
    ),
    rule!(
        WeightsAndBiasesApiKey,
        WANDB_API_KEY,
        ["wandb"],
        assign!("(?i:wandb_api_key|wandb_key)", "[A-Za-z0-9]+"),
        Some(1),
        Check::Shape(40, validate::hex, 10),
        70,
        "WANDB_API_KEY=[[{h:40}]]"
    ),
    rule!(
        StabilityApiKey,
        STABILITY_API_KEY,
        ["stability"],
        assign!(
            "(?i:stability_api_key|stability_key)",
            "sk-[A-Za-z0-9]{48}(?:[A-Za-z0-9]*)"
        ),
        Some(1),
        Check::Sized(51, 14),
        80,
        "STABILITY_API_KEY=[[sk-{a:48}]]"
    ),
];
