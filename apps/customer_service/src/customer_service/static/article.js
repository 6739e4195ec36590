// Shows one knowledge-base article; text is inserted with textContent.
"use strict";
(async () => {
  const docId = window.location.pathname.split("/").filter(Boolean).pop();
  try {
    const response = await fetch(`/kb/${encodeURIComponent(docId)}/content`);
    if (!response.ok) throw new Error(String(response.status));
    const doc = await response.json();
    document.getElementById("title").textContent = doc.title;
    document.title = `${doc.title} - Bramble Bank`;
    document.getElementById("article").textContent = doc.text;
  } catch (e) {
    document.getElementById("error").textContent = `Could not load the article (${e.message}).`;
  }
})();
