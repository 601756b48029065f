// The release page's checks: a booth's fingerprint code against this release, and an
// image or USB key read-back against the release's signatures. Everything runs here;
// the page's Content-Security-Policy lets nothing be sent anywhere.
"use strict";

const boothkey = (() => {
  const release = JSON.parse(document.getElementById("release-data").textContent);
  const CHUNK = 4 << 20;
  const SHORT_FORM = /^[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$/;
  const CODE_PREFIX = "BOOTHKEY/1";

  function bytesFromBase64(text) {
    const raw = atob(text);
    const out = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  function grouped(sixteen) {
    return sixteen.match(/.{4}/g).join("-");
  }

  // A fingerprint code (docs/fingerprint-code.md) or a typed fingerprint, judged.
  function checkCode(text) {
    const words = text.trim().toUpperCase().split(/\s+/).filter((w) => w);
    const ours = release.softwareFingerprint;
    let software, election = null;
    if (words.length === 0) {
      return { ok: false, message: "Type a fingerprint or paste a booth's code first." };
    }
    if (words[0].startsWith("BOOTHKEY")) {
      if (words[0] !== CODE_PREFIX) {
        return { ok: false, message: `Not a code this page can read: it starts with ${words[0]}, not ${CODE_PREFIX}.` };
      }
      if (words.length !== 5 || words[1] !== "SOFTWARE" || words[3] !== "ELECTION") {
        return { ok: false, message: `Not a complete booth code: expected ${CODE_PREFIX} SOFTWARE …  ELECTION …` };
      }
      software = words[2];
      election = words[4] === "NONE" ? null : words[4];
      if (!SHORT_FORM.test(software) || (election !== null && !SHORT_FORM.test(election))) {
        return { ok: false, message: "The code's fingerprints are malformed: it was not made by a boothkey booth, or misread." };
      }
    } else {
      const joined = words.join("").replace(/-/g, "");
      if (!/^[A-Z2-7]{16}$/.test(joined)) {
        return { ok: false, message: "Not a fingerprint: sixteen letters A-Z and digits 2-7, e.g. " + ours + "." };
      }
      software = grouped(joined);
    }
    const electionNote = election === null
      ? (words[0] === CODE_PREFIX ? " The booth had no verified election data open." : "")
      : ` Its election fingerprint is ${election}: compare it with the polling station's published list (it is not part of the software release).`;
    if (software === ours) {
      return {
        ok: true,
        message: `MATCHES this release: software fingerprint ${software} is ${release.name} ${release.version}.` + electionNote,
      };
    }
    return {
      ok: false,
      message: `does not match this release: the booth shows software fingerprint ${software}, this release's is ${ours}. Do not use this booth; call the election authority.` + electionNote,
    };
  }

  // The image's first `size` bytes hashed in one pass, the station data slot read as zeros.
  async function digestImage(file, onProgress) {
    const size = release.image.size;
    const sha256 = new Sha256();
    const blake2b = new Blake2b512();
    const slot = release.dataPartition;
    let stationData = false;
    for (let offset = 0; offset < size; offset += CHUNK) {
      const end = Math.min(offset + CHUNK, size);
      const chunk = new Uint8Array(await file.slice(offset, end).arrayBuffer());
      if (chunk.length !== end - offset) throw new Error(`the file ended at byte ${offset + chunk.length}`);
      if (slot) {
        const lo = Math.max(slot.offset, offset), hi = Math.min(slot.offset + slot.size, end);
        if (lo < hi) {
          const inside = chunk.subarray(lo - offset, hi - offset);
          if (inside.some((b) => b !== 0)) stationData = true;
          inside.fill(0);
        }
      }
      sha256.update(chunk);
      blake2b.update(chunk);
      if (onProgress) onProgress(end / size);
    }
    return { sha256: hex(sha256.digest()), blake2b: blake2b.digest(), stationData };
  }

  function pae(type, payload) {
    const encoder = new TextEncoder();
    const typeBytes = encoder.encode(type);
    return concat(encoder.encode(`DSSEv1 ${typeBytes.length} `), typeBytes,
      encoder.encode(` ${payload.length} `), payload);
  }

  async function ed25519Verify(publicKey, signature, message) {
    const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
  }

  async function signerChecks(digests) {
    const checks = [];
    const payload = bytesFromBase64(release.envelope.payload);
    const statement = JSON.parse(new TextDecoder().decode(payload));
    const subject = (statement.subject || []).find((s) => s.name === release.image.file);
    const signedSha256 = subject && subject.digest ? subject.digest.sha256 : undefined;
    checks.push(signedSha256 === digests.sha256
      ? { ok: true, text: `the signed statement names this image's sha256 ${digests.sha256}` }
      : { ok: false, text: `the signed statement names sha256 ${signedSha256}, the file's is ${digests.sha256}` });

    const message = pae(release.envelope.payloadType, payload);
    const valid = new Set();
    const problems = [];
    for (const signer of release.signers) {
      const publicKey = bytesFromBase64(signer.public);
      const keyid = hex(new Uint8Array(await crypto.subtle.digest("SHA-256", publicKey)));
      if (keyid !== signer.keyid) {
        problems.push(`${signer.name}: key id ${signer.keyid} is not the key's (${keyid})`);
        continue;
      }
      const entries = release.envelope.signatures.filter((s) => s.keyid === signer.keyid);
      let good = false;
      for (const entry of entries) {
        if (await ed25519Verify(publicKey, bytesFromBase64(entry.sig), message)) good = true;
      }
      if (good) valid.add(signer.keyid);
      else problems.push(`${signer.name}: no valid signature of the statement`);
      if (signer.minisign) {
        const m = signer.minisign;
        const signature = bytesFromBase64(m.signature);
        const overFile = await ed25519Verify(publicKey, signature, digests.blake2b);
        const comment = concat(signature, new TextEncoder().encode(m.trustedComment));
        const overComment = await ed25519Verify(publicKey, bytesFromBase64(m.globalSignature), comment);
        checks.push(overFile && overComment
          ? { ok: true, text: `minisign signature ${m.file} by ${signer.name} matches the file` }
          : { ok: false, text: `minisign signature ${m.file} by ${signer.name} ${overFile ? "has an altered trusted comment" : "does not match the file"}` });
      }
    }
    const names = release.signers.filter((s) => valid.has(s.keyid)).map((s) => s.name);
    checks.push(valid.size >= release.threshold
      ? { ok: true, text: `${valid.size} of ${release.signers.length} signers' Ed25519 signatures are valid (${names.join(", ")}), ${release.threshold} required` }
      : { ok: false, text: `${valid.size} valid signature(s), ${release.threshold} required` + (problems.length ? `: ${problems.join("; ")}` : "") });
    return checks;
  }

  // Every check on one selected file; resolves to {verified, reason, checks}.
  async function verifyFile(file, onProgress) {
    const size = release.image.size;
    const checks = [];
    if (file.size < size) {
      const reason = `the file holds ${file.size} bytes, the image ${size}`;
      return { verified: false, reason, checks: [{ ok: false, text: reason }] };
    }
    checks.push({ ok: true, text: file.size === size
      ? `the file is the image's size, ${size} bytes`
      : `the file holds ${file.size} bytes: its first ${size}, the image's size, are checked (a USB key read-back)` });
    const digests = await digestImage(file, onProgress);
    if (digests.sha256 === release.image.sha256) {
      checks.push({ ok: true, text: `sha256 ${digests.sha256} is the image's` + (digests.stationData
        ? ", with the booth-data partition (station data, not part of the published software) read as zeros"
        : "") });
    } else {
      checks.push({ ok: false, text: `sha256 ${digests.sha256} is not the image's ${release.image.sha256}: the bytes differ` });
    }
    if (!(crypto && crypto.subtle)) {
      checks.push({ ok: false, text: "this browser offers no WebCrypto here: use the steps under Verify by hand" });
    } else {
      try {
        checks.push(...(await signerChecks(digests)));
      } catch (error) {
        checks.push({ ok: false, text: `signatures could not be checked in this browser (${error.name || error}: WebCrypto without Ed25519?): use the steps under Verify by hand` });
      }
    }
    const failed = checks.find((c) => !c.ok);
    return { verified: !failed, reason: failed ? failed.text : "", checks };
  }

  function show(element, ok, text) {
    element.textContent = text;
    element.className = "result " + (ok ? "ok" : "bad");
  }

  function filterPackages() {
    const needle = document.getElementById("package-search").value.trim().toLowerCase();
    const rows = document.querySelectorAll("#package-table tbody tr");
    let shown = 0;
    for (const row of rows) {
      const match = !needle || row.textContent.toLowerCase().includes(needle);
      row.hidden = !match;
      if (match) shown++;
    }
    document.getElementById("package-count").textContent = `${shown} of ${rows.length}`;
  }

  function wire() {
    const codeInput = document.getElementById("code-input");
    const codeResult = document.getElementById("code-result");
    const judge = () => {
      const result = checkCode(codeInput.value);
      show(codeResult, result.ok, result.message);
    };
    document.getElementById("code-check").addEventListener("click", judge);
    codeInput.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        judge();
      }
    });
    const imageInput = document.getElementById("image-input");
    const progress = document.getElementById("progress");
    const verdict = document.getElementById("verify-result");
    const list = document.getElementById("verify-checks");
    imageInput.addEventListener("change", async () => {
      const file = imageInput.files[0];
      list.replaceChildren();
      if (!file) return;
      show(verdict, true, `Checking ${file.name}…`);
      verdict.className = "result";
      progress.hidden = false;
      progress.value = 0;
      let result;
      try {
        result = await verifyFile(file, (done) => { progress.value = done; });
      } catch (error) {
        result = { verified: false, reason: `the file could not be read (${error.message || error})`, checks: [] };
      }
      progress.hidden = true;
      for (const check of result.checks) {
        const item = document.createElement("li");
        item.className = check.ok ? "pass" : "fail";
        item.textContent = check.text;
        list.append(item);
      }
      show(verdict, result.verified, result.verified
        ? `VERIFIED: ${file.name} is ${release.name} ${release.version} as published and signed`
        : `NOT VERIFIED: ${result.reason}`);
    });
    document.getElementById("package-search").addEventListener("input", filterPackages);
    filterPackages();
  }

  wire();
  return { checkCode, verifyFile, digestImage, release };
})();
