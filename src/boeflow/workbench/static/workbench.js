// boeflow workbench: collect the reviewer's answer from the draft page and send it to the
// workbench's /respuesta endpoint (which checks it and passes it to Airflow's HITL API).
// Texts are only ever set with textContent: nothing from the BOE or a reviewer becomes markup.
"use strict";

(function () {
  const form = document.getElementById("review");
  if (!form || form.dataset.readonly) {
    return;
  }
  const csrf = document.querySelector("meta[name=boeflow-csrf]").content;
  const status = document.getElementById("status");

  function items() {
    return Array.from(form.querySelectorAll("article.item"));
  }

  function answer(option) {
    const excluir = [];
    const correcciones = {};
    const notas = {};
    for (const item of items()) {
      const id = item.dataset.boeId;
      const box = item.querySelector("input[name=excluir]");
      if (box && box.checked) {
        excluir.push(id);
      }
      for (const lang of ["es", "va"]) {
        const area = item.querySelector("textarea[name=" + lang + "]");
        if (area && area.value !== area.dataset.original) {
          correcciones[lang === "es" ? id : id + ":va"] = area.value;
        }
      }
      const note = item.querySelector("textarea[name=nota_item]");
      if (note && note.value.trim()) {
        notas[id] = note.value;
      }
    }
    return {
      option: option,
      excluir: excluir,
      correcciones: correcciones,
      notas: notas,
      nota: document.getElementById("nota").value,
      draft_hash: form.dataset.draftHash,
    };
  }

  function clearProblems() {
    for (const p of form.querySelectorAll(".problems")) {
      p.textContent = "";
      p.hidden = true;
    }
  }

  function showProblem(problem) {
    let where = null;
    if (problem.boe_id) {
      where = form.querySelector(
        '.problems[data-for="' + CSS.escape(problem.boe_id + ":" + problem.field) + '"]');
    } else if (problem.field) {
      where = form.querySelector('.problems[data-for="' + CSS.escape(problem.field) + '"]');
    }
    if (!where) {
      where = form.querySelector('.problems[data-for="draft"]');
    }
    const details = where.closest("details");
    if (details) {
      details.open = true;
    }
    where.textContent = (where.textContent ? where.textContent + "\n" : "") + problem.message;
    where.hidden = false;
  }

  async function send(option) {
    clearProblems();
    const buttons = form.querySelectorAll("button.option");
    buttons.forEach((b) => { b.disabled = true; });
    status.textContent = "Enviando…";
    try {
      const response = await fetch(form.dataset.submit, {
        method: "POST",
        credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-BoeFlow-CSRF": csrf},
        body: JSON.stringify(answer(option)),
      });
      let body = {};
      try {
        body = await response.json();
      } catch (e) {
        body = {};
      }
      if (response.ok) {
        status.textContent = "Respuesta enviada: " + option + ".";
        window.location.reload();
        return;
      }
      const problems = body.problems || [];
      if (problems.length) {
        problems.forEach(showProblem);
        status.textContent = "No se ha enviado nada: corrija lo indicado.";
        const first = form.querySelector(".problems:not([hidden])");
        if (first) {
          first.scrollIntoView({block: "center"});
        }
      } else {
        status.textContent = "No se ha enviado: " + (body.detail || response.status);
        if (response.status === 409) {
          window.location.reload();
        }
      }
    } catch (e) {
      status.textContent = "No se ha enviado: " + e;
    }
    buttons.forEach((b) => { b.disabled = false; });
  }

  for (const button of form.querySelectorAll("button.option")) {
    button.addEventListener("click", () => send(button.dataset.option));
  }
  for (const area of form.querySelectorAll("textarea[data-original]")) {
    area.addEventListener("input", () => {
      area.classList.toggle("changed", area.value !== area.dataset.original);
    });
  }
  for (const box of form.querySelectorAll("input[name=excluir]")) {
    box.addEventListener("change", () => {
      box.closest("article.item").classList.toggle("excluded", box.checked);
    });
  }
}());
