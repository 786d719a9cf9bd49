import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App';
import { captureToken } from './lib/token';
import './styles.css';

const storedToken = captureToken(window.sessionStorage, window.location, window.history);

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App storedToken={storedToken} />
  </StrictMode>,
);
