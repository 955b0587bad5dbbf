// Progressive enhancement only: every page works without this file.
// Buttons with data-copy copy the text of the element whose id they name.
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy]");
  if (!button) return;
  var source = document.getElementById(button.getAttribute("data-copy"));
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(function () {
    button.textContent = "Copied";
  });
});
document.querySelectorAll("[data-copy]").forEach(function (b) { b.hidden = false; });
