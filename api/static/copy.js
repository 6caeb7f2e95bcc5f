// Copy buttons for Cypher snippets, and the user lookup form. No dependencies.
"use strict";

function copyText(text, button) {
  const done = () => {
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  };
  const fallback = () => {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
    done();
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, fallback);
  } else {
    fallback();
  }
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  const target = document.getElementById(button.dataset.target);
  if (target) copyText(target.innerText, button);
});

document.addEventListener("submit", (event) => {
  const form = event.target.closest("form.lookup");
  if (!form) return;
  event.preventDefault();
  const id = form.querySelector("input").value.trim();
  if (id) window.location.href = form.dataset.prefix + encodeURIComponent(id);
});
