// The verification page: one file, dropped or picked, is POSTed to /v1/verify (multipart) and
// its report is shown in Chinese and English. Every piece of report data goes in through
// textContent or attributes, never as HTML. No framework, nothing loaded from elsewhere.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";

  // -- words, [Chinese, English] -------------------------------------------------------------

  const VERDICTS = {
    compliant: {
      badge: ["合规", "Compliant"],
      text: ["文件带有完整、有效的 AI 生成内容标识：元数据中的标识齐全，与内容相符，没有任何检查未通过。",
        "The file carries a complete, valid AI-generated-content label: the metadata label is " +
        "there, it matches the content, and no check failed."],
    },
    noncompliant: {
      badge: ["不合规", "Not compliant"],
      text: ["文件带有标识，但至少有一项检查未通过（见下方标为“未通过”的项）：标识可能被修改、被复制到别的内容上，或不符合标准。",
        "The file has a label, but at least one check failed (see the rows marked Fail): the " +
        "label may have been edited, copied from other content, or break the standard."],
    },
    not_found: {
      badge: ["未发现标识", "No label found"],
      text: ["文件中没有 AI 生成内容标识，也没有本服务能识别的水印或显式标识。这并不能证明内容不是 AI 生成的。",
        "The file carries no AI-generated-content label, and no watermark or visible label " +
        "this service recognises. That does not prove the content was not made by AI."],
    },
    traces_only: {
      badge: ["仅剩痕迹", "Traces only"],
      text: ["元数据中的标识已经没有了，但内容里仍有本服务提供者的水印或显式标识：它曾被标识过，元数据在传播途中被删除。",
        "The metadata label is gone, but the content still carries this provider's watermark " +
        "or visible label: it was labeled once and the metadata was stripped along the way."],
    },
    inconclusive: {
      badge: ["无法判定", "Inconclusive"],
      text: ["有检查没能完成（例如内容无法解码），所以无法给出结论。",
        "Some check could not be completed (for instance the content could not be decoded), " +
        "so no conclusion can be drawn."],
    },
  };

  const STATUSES = {
    pass: ["通过", "Pass"],
    fail: ["未通过", "Fail"],
    warn: ["注意", "Warning"],
    "n/a": ["不适用", "Not applicable"],
    error: ["出错", "Error"],
  };

  const CHECKS = {
    parse: ["读取文件", "File read"],
    label_present: ["隐式标识（元数据）", "Metadata label present"],
    single_label: ["只有一个标识", "Exactly one label"],
    json: ["标识的 JSON 格式", "Label JSON syntax"],
    keys: ["字段名称", "Field names"],
    types: ["字段类型", "Field types"],
    label_value: ["Label 的取值", "Label value"],
    charset: ["字符规则", "Character rule"],
    producer_code: ["生成合成服务提供者编码", "Producer code"],
    propagator_code: ["内容传播服务提供者编码", "Propagator code"],
    carriers: ["其余载体", "Further carriers"],
    signature: ["签名（ReservedCode1）", "Signature (ReservedCode1)"],
    propagator_signature: ["传播平台签名（ReservedCode2）", "Platform signature (ReservedCode2)"],
    explicit: ["显式标识（可见文字、提示音或文字提示）", "Explicit label (visible text, audible cue or notice)"],
    watermark: ["隐藏水印", "Invisible watermark"],
    token_watermark: ["文本生成水印", "Generation watermark (text)"],
    c2pa: ["C2PA 内容凭证", "C2PA Content Credentials"],
    c2pa_aigc: ["C2PA 中的 AIGC 声明", "C2PA AIGC assertion"],
  };

  const FIELDS = {
    Label: ["生成合成标签", "Label"],
    ContentProducer: ["生成合成服务提供者", "Content producer"],
    ProduceID: ["内容制作编号", "Produce ID"],
    ReservedCode1: ["预留字段 1（签名）", "Reserved code 1 (signature)"],
    ContentPropagator: ["内容传播服务提供者", "Content propagator"],
    PropagateID: ["内容传播编号", "Propagate ID"],
    ReservedCode2: ["预留字段 2（平台签名）", "Reserved code 2 (platform signature)"],
  };
  const FIELD_ORDER = Object.keys(FIELDS);

  const LABEL_VALUES = {
    1: ["属于人工智能生成合成内容", "AI-generated"],
    2: ["可能为人工智能生成合成内容", "possibly AI-generated"],
    3: ["疑似为人工智能生成合成内容", "suspected AI-generated"],
  };

  const SIGNATURE = {
    valid: ["有效：标识和内容都没有改动", "Valid: label and content unchanged"],
    absent: ["没有签名：标识未与内容绑定", "Not signed: the label is not bound to the content"],
    malformed: ["签名格式损坏", "Malformed signature"],
    unknown_scheme: ["其他方案的签名，未检查", "Another scheme's signature, not checked"],
    unverified: ["未验证（没有公钥）", "Unverified (no public key)"],
    unknown_key: ["签名密钥不在信任列表中", "Signed by a key that is not trusted"],
    fields_edited: ["签名后字段被修改", "Fields edited after signing"],
    content_mismatch: ["内容与签名时不同", "The content differs from what was signed"],
    content_changed: ["签名后内容被修改", "The content was changed after labeling"],
    label_copied: ["标识是从别的内容复制来的", "The label was copied from other content"],
    "n/a": ["不适用", "Not applicable"],
    error: ["出错", "Error"],
  };

  const LAYER = {
    present: ["存在", "Present"],
    absent: ["未发现", "Not found"],
    "n/a": ["不适用", "Not applicable"],
    error: ["出错", "Error"],
  };

  const C2PA = {
    trusted: ["有效且签发者可信", "Valid, from a trusted issuer"],
    valid: ["有效，但签发者不在信任列表中", "Valid, but the issuer is not trusted"],
    invalid: ["无效", "Invalid"],
    absent: ["没有 C2PA 凭证", "No C2PA manifest"],
    "n/a": ["不适用", "Not applicable"],
  };

  const POSITIONS = {
    "bottom-right": ["右下角", "bottom right"],
    "bottom-left": ["左下角", "bottom left"],
    "top-right": ["右上角", "top right"],
    "top-left": ["左上角", "top left"],
  };

  const ERRORS = {
    400: ["没有收到文件，或文件是空的。", "No file was received, or the file is empty."],
    404: ["服务找不到这个地址。", "The service does not know this address."],
    413: ["文件太大，超过了本服务允许的上传大小。", "The file is too large: it is over the size this service accepts."],
    415: ["不支持的文件格式：labelkit 不处理这种文件。", "Not a format labelkit handles."],
    422: ["文件已损坏、被截断，或超出了解码限制，无法读取。",
      "The file is damaged, truncated or over a decoding limit, so it cannot be read."],
    503: ["服务正忙，请稍后再试。", "The service is busy; please try again later."],
    504: ["核验用时太长，服务已停止等待。", "Verification took too long; the service stopped waiting."],
  };

  // -- DOM helpers: text only --------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined) node.setAttribute(k, String(v));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  // A Chinese span and an English span, side by side.
  function both(pair, cls) {
    const zh = el("span", { lang: "zh-CN" }, pair[0]);
    const en = el("span", { lang: "en", class: "en" }, pair[1]);
    const out = el("span", { class: cls ? "both " + cls : "both" }, zh, " ", en);
    return out;
  }

  // A term before its value: "位置 · Position:".
  function term(pair) {
    return el("span", { class: "term" }, both(pair), ":");
  }

  function words(table, key) {
    return table[key] || [String(key), String(key)];
  }

  function code(text) {
    return el("code", { lang: "en" }, String(text));
  }

  const $ = (id) => document.getElementById(id);

  // -- state ---------------------------------------------------------------------------------

  let previewUrl = null;
  let busy = false;

  function setState(state) {
    document.body.dataset.state = state;
  }

  function setStatus(pair) {
    const status = $("status");
    status.replaceChildren();
    if (pair) status.append(both(pair));
  }

  function clearResult() {
    $("error").hidden = true;
    $("error").replaceChildren();
    $("result").hidden = true;
    for (const id of ["verdict", "layers", "checks", "record", "preview-caption", "result-name"]) {
      $(id).replaceChildren();
    }
    $("preview").hidden = true;
    $("preview-box").replaceChildren();
    $("preview-img").removeAttribute("src");
    if (previewUrl) {
      URL.revokeObjectURL(previewUrl);
      previewUrl = null;
    }
  }

  // -- verifying -----------------------------------------------------------------------------

  async function verifyFile(file) {
    if (busy) return;
    busy = true;
    clearResult();
    setState("busy");
    $("drop").setAttribute("aria-busy", "true");
    setStatus(["正在核验 " + file.name + " …", "Verifying " + file.name + " …"]);
    const form = new FormData();
    form.append("file", file, file.name || "upload");
    let response;
    try {
      response = await fetch("/v1/verify", { method: "POST", body: form });
    } catch (exc) {
      showError(null, file, String(exc && exc.message ? exc.message : exc), null);
      return done();
    }
    let body = null;
    try {
      body = await response.json();
    } catch (exc) {
      body = null;
    }
    if (!response.ok || !body || typeof body !== "object") {
      const message = body && typeof body.error === "string" ? body.error : null;
      showError(response.status, file, message, response.headers.get("Retry-After"));
    } else {
      showReport(body, file);
    }
    done();
  }

  function done() {
    busy = false;
    $("drop").removeAttribute("aria-busy");
  }

  function showError(status, file, message, retryAfter) {
    setStatus(null);
    const box = $("error");
    let pair = status === null
      ? ["无法连接到服务（如果文件很大，也可能是服务拒收了它）。",
        "Could not reach the service (or, for a large file, the service refused it)."]
      : ERRORS[status] || ["服务返回了错误（HTTP " + status + "）。",
        "The service answered with an error (HTTP " + status + ")."];
    if (status === 503 && retryAfter) {
      pair = ["服务正忙，请在 " + retryAfter + " 秒后再试。",
        "The service is busy; try again in " + retryAfter + " seconds."];
    }
    box.append(
      el("h2", {}, both(["无法核验", "Could not verify"]),
        " ", el("span", { class: "file-name" }, file.name || "")),
      el("p", { class: "error-text" }, both(pair)),
    );
    if (status !== null) box.append(el("p", { class: "http" }, "HTTP " + status));
    if (message) {
      box.append(el("p", { class: "detail" },
        term(["服务的说明（英文）", "The service says"]), " ", code(message)));
    }
    box.hidden = false;
    box.setAttribute("tabindex", "-1");
    box.dataset.status = status === null ? "network" : String(status);
    setState("error");
    box.focus();
  }

  // -- the report ----------------------------------------------------------------------------

  function showReport(report, file) {
    setStatus(["核验完成。", "Verification finished."]);
    $("result-name").textContent = report.path || file.name || "";
    showVerdict(report.verdict);
    showLayers(report);
    showChecks(report.checks || []);
    showRecord(report.record);
    showPreview(report, file);
    $("result").hidden = false;
    setState("done");
    $("result-title").focus();
  }

  function showVerdict(verdict) {
    const box = $("verdict");
    const known = VERDICTS[verdict];
    box.dataset.verdict = String(verdict);
    box.className = "verdict verdict-" + (known ? verdict : "unknown");
    const badge = known ? known.badge : [String(verdict), String(verdict)];
    box.append(el("p", { class: "badge" }, both(badge)));
    if (known) {
      box.append(el("p", { class: "meaning", lang: "zh-CN" }, known.text[0]),
        el("p", { class: "meaning en", lang: "en" }, known.text[1]));
    }
  }

  function statusBadge(status) {
    const cls = "st st-" + String(status).replace("/", "");
    return el("span", { class: cls, "data-status": String(status) }, both(words(STATUSES, status)));
  }

  function showChecks(checks) {
    const list = $("checks");
    for (const check of checks) {
      const title = CHECKS[check.id] ? both(CHECKS[check.id]) : code(check.id);
      const row = el("li", { class: "check check-" + String(check.status).replace("/", ""),
        "data-check": String(check.id), "data-status": String(check.status) },
      el("div", { class: "check-head" }, statusBadge(check.status),
        el("span", { class: "check-title" }, title)),
      el("p", { class: "check-message", lang: "en" }, String(check.message || "")));
      list.append(row);
    }
    if (!checks.length) list.append(el("li", {}, both(["没有检查结果。", "No checks."])));
  }

  function showRecord(record) {
    const host = $("record");
    if (!record || typeof record !== "object") {
      host.append(el("p", { class: "none" },
        both(["文件中没有可读的隐式标识。", "The file holds no readable metadata label."])));
      return;
    }
    const dl = el("dl", { class: "fields" });
    const keys = FIELD_ORDER.concat(Object.keys(record).filter((k) => !FIELDS[k]));
    for (const key of keys) {
      const value = record[key];
      const dd = el("dd", { "data-field": key });
      if (value === undefined) {
        dd.append(both(["（缺失）", "(missing)"], "empty"));
      } else if (value === "" || value === null) {
        dd.append(both(["（空）", "(empty)"], "empty"));
      } else {
        const text = typeof value === "string" ? value : JSON.stringify(value);
        dd.append(code(text));
        if (key === "Label" && LABEL_VALUES[text]) {
          dd.append(" ", both(LABEL_VALUES[text], "gloss"));
        }
      }
      dl.append(el("dt", {}, FIELDS[key] ? both(FIELDS[key]) : code(key),
        el("span", { class: "key", lang: "en" }, key)), dd);
    }
    host.append(dl);
  }

  function layer(name, statusWords, details, id) {
    const dl = $("layers");
    const dd = el("dd", { id: id }, el("span", { class: "layer-status" }, both(statusWords)));
    for (const line of details) dd.append(el("p", { class: "layer-detail" }, ...line));
    dl.append(el("dt", {}, both(name)), dd);
  }

  function showLayers(report) {
    const sig = report.signature || { status: "n/a" };
    const sigDetails = [];
    if (sig.key_id) sigDetails.push([both(["密钥", "Key"]), " ", code(sig.key_id)]);
    if (sig.message) sigDetails.push([code(sig.message)]);
    if (sig.propagator) {
      sigDetails.push([term(["平台签名", "Platform signature"]), " ",
        both(words(SIGNATURE, sig.propagator.status))]);
    }
    layer(["签名", "Signature"], words(SIGNATURE, sig.status), sigDetails, "layer-signature");

    const exp = report.explicit || { status: "n/a" };
    const expDetails = [];
    if (exp.position) expDetails.push([term(["位置", "Position"]), " ", both(words(POSITIONS, exp.position))]);
    if (Array.isArray(exp.box) && exp.box.length === 4) {
      expDetails.push([term(["区域（像素 x0, y0 – x1, y1）", "Region (pixels x0, y0 – x1, y1)"]), " ",
        code(exp.box[0] + ", " + exp.box[1] + " – " + exp.box[2] + ", " + exp.box[3])]);
    }
    if (typeof exp.ink_height_ratio === "number") {
      expDetails.push([term(["文字高度占短边", "Text height, share of the shortest side"]), " ",
        code((exp.ink_height_ratio * 100).toFixed(1) + " %")]);
    }
    if (typeof exp.duration_s === "number") {
      expDetails.push([term(["从开头显示", "Shown from the start for"]), " ",
        code((exp.duration_at_least ? "≥ " : "") + exp.duration_s.toFixed(2) + " s")]);
    }
    if (exp.message) expDetails.push([code(exp.message)]);
    layer(["显式标识", "Explicit label"], words(LAYER, exp.status), expDetails, "layer-explicit");

    const wm = report.watermark || { status: "n/a" };
    const wmDetails = [];
    if (typeof wm.present === "boolean") {
      wmDetails.push([term(["是否存在", "Present"]), " ",
        both(wm.present ? ["是", "yes"] : ["否", "no"])]);
    }
    if (wm.payload) {
      wmDetails.push([term(["载荷", "Payload"]), " ",
        el("code", { lang: "en", class: "payload" }, String(wm.payload))]);
    }
    if (wm.present && wm.payload) {
      const match = wm.matches_record === true
        ? ["与标识的内容制作编号相符", "matches the label's ProduceID"]
        : wm.matches_record === false
          ? ["属于另一个内容制作编号：标识被替换或复制", "belongs to another ProduceID: the label was replaced or copied"]
          : ["没有元数据标识可以比对", "no metadata label to match it with"];
      wmDetails.push([term(["与标识比对", "Matches the label"]), " ",
        el("span", { class: "match", "data-match": String(wm.matches_record) }, both(match))]);
    }
    if (typeof wm.p_value === "number") {
      wmDetails.push([term(["偶然出现的概率", "Chance of appearing by accident"]), " ",
        code("p = " + wm.p_value.toPrecision(2))]);
    }
    if (wm.message) wmDetails.push([code(wm.message)]);
    layer(["隐藏水印", "Invisible watermark"], words(LAYER, wm.status), wmDetails, "layer-watermark");

    const c2pa = report.c2pa || { status: "n/a" };
    layer(["C2PA 内容凭证", "C2PA Content Credentials"], words(C2PA, c2pa.status),
      c2pa.message ? [[code(c2pa.message)]] : [], "layer-c2pa");

    const tok = report.token_watermark || { status: "n/a" };
    layer(["文本生成水印", "Generation watermark (text)"], words(LAYER, tok.status),
      tok.message ? [[code(tok.message)]] : [], "layer-token-watermark");
  }

  // -- the picture and the visible label's region ---------------------------------------------

  function showPreview(report, file) {
    const isImage = (file.type && file.type.startsWith("image/")) ||
      ["jpeg", "png", "webp", "gif", "bmp", "avif"].includes(String(report.format));
    if (!isImage) return;
    const img = $("preview-img");
    const svg = $("preview-box");
    const caption = $("preview-caption");
    const exp = report.explicit || {};
    const box = Array.isArray(exp.box) && exp.box.length === 4 && exp.box.every(Number.isFinite)
      ? exp.box : null;
    img.alt = "上传的图片 · The uploaded picture";
    img.onload = () => {
      const w = img.naturalWidth;
      const h = img.naturalHeight;
      svg.setAttribute("viewBox", "0 0 " + w + " " + h);
      svg.replaceChildren();
      if (box) {
        const rect = document.createElementNS(SVG, "rect");
        rect.setAttribute("id", "label-box");
        rect.setAttribute("class", "label-box");
        rect.setAttribute("x", String(box[0]));
        rect.setAttribute("y", String(box[1]));
        rect.setAttribute("width", String(Math.max(0, box[2] - box[0])));
        rect.setAttribute("height", String(Math.max(0, box[3] - box[1])));
        rect.setAttribute("vector-effect", "non-scaling-stroke");
        svg.append(rect);
      }
      $("preview").dataset.loaded = "true";
    };
    img.onerror = () => {
      $("preview").hidden = true;
      $("preview").dataset.loaded = "failed";
    };
    caption.append(box
      ? both(["红框是检测到的显式标识所在区域。", "The red box is where the visible label was found."])
      : both(["图中没有找到本服务能识别的显式标识。", "No visible label this service recognises was found in the picture."]));
    previewUrl = URL.createObjectURL(file);
    img.src = previewUrl;
    $("preview").hidden = false;
  }

  // -- input: the picker and drag-and-drop ----------------------------------------------------

  function pick(files) {
    if (!files || !files.length) return;
    if (files.length > 1) {
      // Only one file per verification; say so rather than silently drop the rest.
      setStatus(["只核验第一个文件。", "Only the first file is verified."]);
    }
    verifyFile(files[0]);
  }

  function init() {
    const drop = $("drop");
    const input = $("file");
    input.addEventListener("change", () => {
      pick(input.files);
      input.value = "";
    });
    let depth = 0;
    drop.addEventListener("dragenter", (e) => {
      e.preventDefault();
      depth += 1;
      drop.classList.add("over");
    });
    drop.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) drop.classList.remove("over");
    });
    drop.addEventListener("dragover", (e) => {
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = "copy";
    });
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      depth = 0;
      drop.classList.remove("over");
      pick(e.dataTransfer && e.dataTransfer.files);
    });
    // A file dropped beside the zone must not replace the page with the file.
    for (const type of ["dragover", "drop"]) {
      window.addEventListener(type, (e) => {
        if (!drop.contains(e.target)) e.preventDefault();
      });
    }
    setState("idle");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
