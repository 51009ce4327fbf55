/*
 * spm_shim.cc — the extern "C" shim over libsentencepiece (see spm_shim.h). Every entry point
 * catches everything: C callers never see a C++ exception.
 */
#include "models/spm_shim.h"

#include <sentencepiece_processor.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

struct wr_spm {
    sentencepiece::SentencePieceProcessor sp;
    int32_t count = 0;
};

extern "C" wr_status wr_spm_load(wr_spm **out, const void *bytes, size_t nbytes, const char *name) {
    *out = nullptr;
    wr_spm *m = nullptr;
    try {
        m = new wr_spm();
        std::string_view blob(static_cast<const char *>(bytes), nbytes);
        const auto st = m->sp.LoadFromSerializedProto(blob);
        if (!st.ok()) {
            const std::string why = st.ToString();
            delete m;
            return WR_FAIL(WR_ERR_FORMAT,
                           "%s: not a usable SentencePiece model (libsentencepiece: %s); pass "
                           "the spiece.model from the checkpoint's tokenizer/ folder",
                           name, why.c_str());
        }
        m->count = m->sp.GetPieceSize();
        *out = m;
        return WR_OK;
    } catch (const std::bad_alloc &) {
        delete m;
        return WR_FAIL(WR_ERR_OOM_HOST, "%s: out of host memory while loading the model", name);
    } catch (const std::exception &e) {
        delete m;
        return WR_FAIL(WR_ERR_FORMAT, "%s: libsentencepiece failed to load the model (%s)", name,
                       e.what());
    } catch (...) {
        delete m;
        return WR_FAIL(WR_ERR_FORMAT, "%s: libsentencepiece failed to load the model", name);
    }
}

extern "C" void wr_spm_free(wr_spm *m) {
    delete m;
}

extern "C" int32_t wr_spm_piece_count(const wr_spm *m) {
    return m->count;
}

extern "C" const char *wr_spm_id_to_piece(const wr_spm *m, int32_t id, size_t *len) {
    if (id < 0 || id >= m->count) return nullptr;
    try {
        const std::string &p = m->sp.IdToPiece(id);
        *len = p.size();
        return p.data();
    } catch (...) {
        return nullptr;
    }
}

extern "C" int32_t wr_spm_piece_to_id(const wr_spm *m, const char *piece, size_t len) {
    try {
        std::string_view key(piece, len);
        const int id = m->sp.PieceToId(key);
        /* The library answers unk_id for unknown pieces: confirm the bytes match. */
        if (id < 0 || id >= m->count) return -1;
        const std::string &p = m->sp.IdToPiece(id);
        if (p.size() != len || std::memcmp(p.data(), piece, len) != 0) return -1;
        return id;
    } catch (...) {
        return -1;
    }
}

extern "C" float wr_spm_score(const wr_spm *m, int32_t id) {
    if (id < 0 || id >= m->count) return 0.0f;
    try {
        return m->sp.GetScore(id);
    } catch (...) {
        return 0.0f;
    }
}

extern "C" int32_t wr_spm_unk_id(const wr_spm *m) {
    try {
        return m->sp.unk_id();
    } catch (...) {
        return -1;
    }
}

extern "C" wr_spm_kind wr_spm_piece_kind(const wr_spm *m, int32_t id) {
    try {
        if (m->sp.IsUnknown(id)) return WR_SPM_KIND_UNKNOWN;
        if (m->sp.IsControl(id)) return WR_SPM_KIND_CONTROL;
        if (m->sp.IsUnused(id)) return WR_SPM_KIND_UNUSED;
        if (m->sp.IsByte(id)) return WR_SPM_KIND_BYTE;
        return WR_SPM_KIND_NORMAL;
    } catch (...) {
        return WR_SPM_KIND_NORMAL;
    }
}

extern "C" wr_status wr_spm_encode(const wr_spm *m, const char *text, size_t len, int32_t **ids,
                                   size_t *n) {
    *ids = nullptr;
    *n = 0;
    try {
        std::vector<int> v;
        const auto st = m->sp.Encode(std::string_view(text, len), &v);
        if (!st.ok()) {
            const std::string why = st.ToString();
            return WR_FAIL(WR_ERR_INVALID_ARG, "libsentencepiece could not encode the text (%s)",
                           why.c_str());
        }
        if (v.empty()) return WR_OK;
        int32_t *buf = static_cast<int32_t *>(std::malloc(v.size() * sizeof(int32_t)));
        if (!buf) return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory (%zu ids)", v.size());
        for (size_t i = 0; i < v.size(); i++) buf[i] = static_cast<int32_t>(v[i]);
        *ids = buf;
        *n = v.size();
        return WR_OK;
    } catch (const std::bad_alloc &) {
        return WR_FAIL(WR_ERR_OOM_HOST, "out of host memory while encoding %zu bytes", len);
    } catch (...) {
        return WR_FAIL(WR_ERR_INTERNAL, "libsentencepiece threw while encoding %zu bytes", len);
    }
}
