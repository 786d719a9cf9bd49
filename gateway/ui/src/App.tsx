import { BrowserRouter, Link, NavLink, Route, Routes } from 'react-router-dom';
import { GatewayProvider } from './GatewayContext';
import { HomePage } from './pages/HomePage';
import { OpsPage } from './pages/OpsPage';
import { TopicPage } from './pages/TopicPage';
import { UserPage } from './pages/UserPage';

export function App({ storedToken }: { storedToken: string | null }) {
  return (
    <BrowserRouter>
      <header className="site-header">
        <Link to="/" className="brand">
          valkey-agentic
        </Link>
        <nav>
          <NavLink to="/" end>
            Home
          </NavLink>
          <NavLink to="/ops">Operations</NavLink>
        </nav>
      </header>
      <GatewayProvider storedToken={storedToken}>
        <Routes>
          <Route path="/" element={<HomePage />} />
          <Route path="/u/:id" element={<UserPage />} />
          <Route path="/t/:slug" element={<TopicPage />} />
          <Route path="/ops" element={<OpsPage />} />
          <Route path="*" element={<NotFound />} />
        </Routes>
      </GatewayProvider>
    </BrowserRouter>
  );
}

function NotFound() {
  return (
    <main className="page">
      <h1>Not found</h1>
      <p>
        There is no page here. <Link to="/">Home</Link>
      </p>
    </main>
  );
}
